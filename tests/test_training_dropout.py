"""LoRA's dropout keeps a bool mask and draws what nn.Dropout draws, in a float32 or a bf16 model."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model

from engine.pipeline.training.dropout import MaskDropout, lean_lora_dropout


def saved_dtypes(fn, x: torch.Tensor) -> list[torch.dtype]:
    """The dtypes of the tensors autograd keeps for fn's backward pass."""
    seen: list[torch.dtype] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: seen.append(t.dtype) or t, lambda t: t):
        fn(x)
    return seen


def test_mask_dropout_draws_as_nn_dropout_and_keeps_a_bool_mask():
    x = torch.randn(64, 96, requires_grad=True)
    torch.manual_seed(7)
    plain = torch.nn.Dropout(0.3)(x)
    torch.manual_seed(7)
    lean = MaskDropout(0.3)(x)
    assert torch.equal(plain, lean) and 0.2 < (lean == 0).float().mean().item() < 0.4
    assert saved_dtypes(torch.nn.Dropout(0.3), x) == [torch.float32]  # torch's CPU dropout: a float mask
    assert saved_dtypes(MaskDropout(0.3), x) == [torch.bool]
    lean.sum().backward()
    assert torch.equal(x.grad == 0, lean == 0)
    assert MaskDropout(0.3).eval()(x) is x


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = torch.nn.Linear(8, 16), torch.nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(x)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lean_lora_swaps_every_dropout(dtype):
    model = get_peft_model(Tiny().to(dtype), LoraConfig(r=2, lora_alpha=4, lora_dropout=0.1,
                                                         target_modules=["up", "down"]))
    assert lean_lora_dropout(model) == 2
    layers = [m for m in model.modules() if hasattr(m, "lora_dropout")]
    assert [type(m.lora_dropout["default"]) for m in layers] == [MaskDropout, MaskDropout]
    assert {p.dtype for n, p in model.named_parameters() if "lora_" in n} == {torch.float32}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        out = model(torch.randn(3, 8, dtype=dtype))
    out.float().sum().backward()  # the adapter's float32 weights get their gradients
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)
    assert lean_lora_dropout(model) == 0  # already swapped

"""SFT loss with logits only where a label is: the reply, not the prompt.

trl's SFTTrainer scores every position through a fused LM head. On CUDA its Triton path keeps only the labelled
positions, but on a CPU it projects all of them, in float32 tiles of up to 4,096 tokens by 32,768 vocabulary
entries (512 MB each, several alive at once): for the tutorial (batch 4, up to 1,024 tokens, SmolLM2's 49,152-token
vocabulary) that is most of a step's memory and a good part of its time, spent on prompt positions whose label is
-100. Here the model's own forward (so the wrappers, PEFT and accelerate, run theirs as usual) returns the final
hidden states and no logits (`logits_to_keep`, an all-false boolean mask, transformers >= 5); the labelled
positions' states are projected onto the vocabulary CHUNK tokens at a time, each chunk's logits recomputed in the
backward pass rather than kept. The loss is the stock one: summed cross-entropy over those positions divided by
`num_items_in_batch` (the labelled tokens of the whole accumulated step) or, without it, by this batch's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from trl import SFTTrainer

# Labelled tokens projected at once: 256 x 49,152 float32 logits are 50 MB (a tutorial batch has about 1,100)
CHUNK = 256


def next_token_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The positions whose next token carries a label, as a (batch, seq) mask, and those labels in the same order.

    Position t predicts token t+1, so the mask is the shifted labels' mask with the last position off: the logits
    `hidden[mask]` (row by row) line up with `labels[:, 1:][labels[:, 1:] != -100]`.
    """
    shifted = labels[:, 1:]
    labelled = shifted != -100
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labelled
    return keep, shifted[labelled]


def chunk_loss(hidden: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor,
               bias: torch.Tensor | None) -> torch.Tensor:
    """Summed cross-entropy of one chunk of hidden states against their next tokens, projected in the head's own
    dtype (the model's outputs come back in float32 from accelerate's autocast wrapper, its head may be bf16)."""
    return F.cross_entropy(F.linear(hidden.to(weight.dtype), weight, bias).float(), targets, reduction="sum")


class LabelLossSFTTrainer(SFTTrainer):
    """SFTTrainer whose loss, entropy and token accuracy come from the labelled positions' logits alone."""

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if return_outputs:  # evaluation that wants the logits themselves: the stock path builds them
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        keep, targets = next_token_positions(inputs["labels"])
        forward = {k: v for k, v in inputs.items() if k != "labels"}
        outputs = model(**forward, use_cache=False, output_hidden_states=True, logits_to_keep=torch.zeros_like(keep))
        hidden = outputs.hidden_states[-1][keep]  # (labelled, hidden): the final, normed states
        head = self.accelerator.unwrap_model(model).get_output_embeddings()
        total = hidden.new_zeros((), dtype=torch.float32)
        stats = torch.zeros(2, dtype=torch.float64)  # entropy sum, correct top-1 predictions
        for part, part_targets in zip(hidden.split(CHUNK), targets.split(CHUNK), strict=True):
            total = total + checkpoint(chunk_loss, part, part_targets, head.weight, head.bias, use_reentrant=False)
            with torch.no_grad():
                stats += metric_sums(F.linear(part.to(head.weight.dtype), head.weight, head.bias), part_targets)
        # `num_items_in_batch` counts the labelled tokens of the whole accumulated step (of every rank), as in trl
        denominator = targets.numel() if num_items_in_batch is None else num_items_in_batch
        loss = total / torch.as_tensor(denominator).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        self._log_metrics(mode, stats, targets.numel(), inputs)
        return loss

    def _log_metrics(self, mode: str, stats: torch.Tensor, labelled: int, inputs: dict[str, Any]) -> None:
        """trl's per-step metrics, over the same labelled positions: entropy, mean_token_accuracy, num_tokens."""
        gather = self.accelerator.gather_for_metrics
        device = inputs["labels"].device
        num_valid = gather(torch.tensor(labelled, device=device)).sum()
        entropy_sum = gather(stats[0].to(device)).sum()
        num_correct = gather(stats[1].to(device)).sum()
        self._metrics[mode]["entropy"].append((entropy_sum / num_valid).item() if num_valid > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((num_correct / num_valid).item() if num_valid > 0 else 0.0)
        if mode == "train":  # padding-free packing has no attention mask: every position of its one row is a token
            if "attention_mask" in inputs:
                local_tokens = inputs["attention_mask"].sum()
            else:
                local_tokens = torch.tensor(inputs["position_ids"].size(1), device=device)
            self._total_train_tokens += gather(local_tokens).sum().item() // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]


def metric_sums(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The entropy summed over positions and the count of positions whose top logit is the target (argmax takes
    the first of tied maxima, as trl does), in float32 whatever the logits' dtype, with one float32 copy alive
    besides the log-probabilities."""
    correct = (logits.argmax(dim=-1) == targets).sum()
    log_probs = torch.log_softmax(logits, dim=-1, dtype=torch.float32)
    entropy = -log_probs.exp().mul_(log_probs).sum()
    return torch.stack([entropy.double().cpu(), correct.double().cpu()])

"""Shipped files resolve from a checkout and from a wheel's layout; a user's own relative paths from the cwd."""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import engine.paths as paths
from engine.paths import DATA_SUBDIR, SHIPPED, resolve, shipped_dir

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_name_the_shipped_files_wherever_the_cwd_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve("scenarios/heldout.jsonl") == shipped_dir("scenarios") / "heldout.jsonl"
    assert resolve("configs/finetune-smollm2.yaml").is_file()
    assert resolve("scenarios/none.yaml") == Path("scenarios/none.yaml")  # missing: the error names what was typed
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "heldout.jsonl").write_text("")
    assert resolve("scenarios/heldout.jsonl") == Path("scenarios/heldout.jsonl")  # the user's own file wins
    assert resolve("other/x.yaml") == Path("other/x.yaml")
    with pytest.raises(ValueError):
        shipped_dir("models")


def test_a_wheel_layout_finds_its_data_files(tmp_path):
    """As pip lays out a wheel: the module in site-packages, the data files under <prefix>/share/ptom-lab."""
    module = tmp_path / "lib" / "python3.11" / "site-packages" / "engine" / "paths.py"
    module.parent.mkdir(parents=True)
    shutil.copy(paths.__file__, module)
    data = tmp_path / DATA_SUBDIR / "scenarios"
    data.mkdir(parents=True)
    (data / "heldout.jsonl").write_text("")
    code = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('p', sys.argv[1]); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); print(m.resolve('scenarios/heldout.jsonl'))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(module)], cwd=tmp_path / "lib", capture_output=True,
                         text=True, check=True).stdout.strip()
    assert Path(out) == data / "heldout.jsonl"


def test_pyproject_ships_every_scenario_and_config_file():
    tomllib = pytest.importorskip("tomllib")
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    for name in SHIPPED:
        shipped = {Path(p).name for pattern in data_files[f"share/ptom-lab/{name}"] for p in glob.glob(str(ROOT / pattern))}
        assert shipped == {p.name for p in (ROOT / name).iterdir() if p.is_file()}, name

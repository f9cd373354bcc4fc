"""Where shipped files live, so that the lab works from any folder.

The scenario sets (`scenarios/`) and training configs (`configs/`) ship with the package. In a source checkout or
an editable install they sit beside `engine/`; a wheel installs them as data files under
`<prefix>/share/ptom-lab/` (pyproject's `[tool.setuptools.data-files]`). A path the user gives is read from the
current folder when it exists there; otherwise a relative `scenarios/...` or `configs/...` names the shipped file,
so the defaults (`scenarios/heldout.jsonl`) and the README's commands work wherever they are run.
"""

from __future__ import annotations

import sysconfig
from functools import cache
from pathlib import Path

SHIPPED = ("scenarios", "configs")
DATA_SUBDIR = Path("share") / "ptom-lab"  # where a wheel's data files go, under the install prefix


def _candidates() -> list[Path]:
    package = Path(__file__).resolve().parent
    roots = [package.parent]  # a checkout or an editable install: the repository root
    # a wheel: the prefix the package was installed under (`lib/pythonX.Y/site-packages/engine` on POSIX,
    # `Lib/site-packages/engine` on Windows), then the interpreter's own data paths (venv, system, --user)
    roots += [package.parents[i] / DATA_SUBDIR for i in (2, 3) if i < len(package.parents)]
    for scheme in {sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user")}:
        roots.append(Path(sysconfig.get_path("data", scheme)) / DATA_SUBDIR)
    return roots


@cache
def shipped_dir(name: str) -> Path:
    """The folder of shipped `scenarios` or `configs`: the first install location that holds it."""
    if name not in SHIPPED:
        raise ValueError(f"'{name}' is not a shipped folder ({', '.join(SHIPPED)})")
    for root in _candidates():
        if (root / name).is_dir():
            return root / name
    return _candidates()[0] / name  # none installed: the checkout's path, so an error names a sensible place


def resolve(path: str | Path) -> Path:
    """A user's path: as given when it exists (relative to the current folder), else the shipped file it names."""
    given = Path(path).expanduser()
    if given.exists() or given.is_absolute() or not given.parts or given.parts[0] not in SHIPPED:
        return given
    shipped = shipped_dir(given.parts[0]).joinpath(*given.parts[1:])
    return shipped if shipped.exists() else given

"""Where the study's files are, so that the ``lightsam`` command works from any directory.

The project is the nearest directory, from the current one upwards, that holds ``experiments/``
or ``sweeps/``; failing that, the checkout lightsam is installed from (an editable install);
failing that, the current directory. Names of specs, sweeps and SLURM profiles
(``mnist5k_lenet``) are looked up in its folders, and the default outputs (``runs/``,
``figures/``, ``REPORT.md``, ``data/``) are its own.
"""

from __future__ import annotations

from pathlib import Path

FOLDERS = ("experiments", "sweeps")


def _is_project(directory: Path) -> bool:
    return any((directory / folder).is_dir() for folder in FOLDERS)


def root() -> Path:
    here = Path.cwd()
    for directory in (here, *here.parents):
        if _is_project(directory):
            return directory
    checkout = Path(__file__).resolve().parents[1]
    return checkout if _is_project(checkout) else here


def find(name_or_path: str, folder: str) -> Path:
    """A file's path as given if it exists or looks like a path, else the YAML file of that name
    in the project's ``folder`` (``find("mnist5k_study", "sweeps")``)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    return root() / folder / f"{name_or_path}.yaml"


def default(relative: str) -> Path:
    """A default output or input of the project (``default("runs")``)."""
    return root() / relative

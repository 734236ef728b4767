"""``python -m lightsam`` and the ``lightsam`` command: the study's command line. It needs the
study's dependencies (``pip install 'lightsam[study]'``), which the optimizers do not."""

from __future__ import annotations

# The top-level modules of the study extra's packages (pyproject.toml).
STUDY_MODULES = frozenset(
    {"torchvision", "timm", "submitit", "wandb", "pandas", "matplotlib", "yaml", "mlxtend", "tqdm"}
)


def main() -> None:
    try:
        from lightsam.cli import main as command
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in STUDY_MODULES:
            raise
        raise SystemExit(
            f"lightsam: the command needs the study's dependencies ({error.name} is not "
            "installed): pip install 'lightsam[study]'"
        ) from error
    command()


if __name__ == "__main__":
    main()

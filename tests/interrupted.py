"""A run killed after its first epoch, as a process that dies once its first checkpoint is
written: what the resume tests start from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lightsam.train import Recorder


def killed_after_the_first_epoch(monkeypatch: pytest.MonkeyPatch, start: Callable[[], Any]) -> None:
    """Call ``start`` (a run) with the first epoch's checkpoint and metrics written, then the
    process killed; the run's directory is left as the kill leaves it."""
    finish_epoch = Recorder.epoch

    def killed(self, history, checkpoint):
        finish_epoch(self, history, checkpoint)
        raise RuntimeError("killed")

    with monkeypatch.context() as patched:
        patched.setattr(Recorder, "epoch", killed)
        with pytest.raises(RuntimeError, match="killed"):
            start()

"""Training checkpoints: one file, written atomically, holding everything a resume needs.

A run killed at any point restarts from its last checkpoint and, because the data order
is a pure function of (seed, step) and the frozen model runs without dropout, ends with
the same prompt as an uninterrupted run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from softprompt.errors import SoftPromptError
from softprompt.fileio import atomic_write

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainState:
    """Where a run stands. best_metric is the dev primary metric of the best prompt so far."""

    step: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False


class ResumeMismatch(SoftPromptError):
    """A resume whose setting differs from the checkpoint's where the difference would change what
    the continued run computes. `setting` is the TrainConfig field; `saved` its checkpoint value,
    the one to set it back to (a front end names its own flag for it)."""

    def __init__(self, run_dir: Path, setting: str, saved: object, current: object) -> None:
        super().__init__(f"cannot resume {run_dir}: {setting} was {saved!r} in the checkpoint, now {current!r}")
        self.setting, self.saved, self.current = setting, saved, current


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """A run folder that holds a run is continued (resume) or replaced (overwrite), never
    overwritten by accident; resume needs a checkpoint."""
    has_run = (Path(run_dir) / CHECKPOINT_NAME).exists()
    if resume and not has_run:
        raise SoftPromptError(f"--resume: no checkpoint in {run_dir}")
    if has_run and not resume and not overwrite:
        raise SoftPromptError(f"{run_dir} already holds a run: --resume to continue it, --overwrite to start over")


def save_checkpoint(run_dir: Path, prompt: torch.Tensor, optimizer_state: dict, state: TrainState, config: dict,
                    reparameterization: dict[str, torch.Tensor] | None = None) -> Path:
    """`prompt` is P as trained (before a reparameterization, whose parameters are
    `reparameterization`, a state dict)."""
    path = Path(run_dir) / CHECKPOINT_NAME
    payload = {
        "prompt": prompt.detach().cpu().clone(),
        "reparameterization": None if reparameterization is None else {
            name: tensor.detach().cpu().clone() for name, tensor in reparameterization.items()},
        "optimizer": optimizer_state,
        "state": state.__dict__.copy(),
        "config": config,
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.is_file():
        raise SoftPromptError(f"cannot resume: no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt file: say which
        raise SoftPromptError(f"cannot resume: checkpoint {path} is unreadable ({err})") from None
    payload["state"] = TrainState(**payload["state"])
    return payload

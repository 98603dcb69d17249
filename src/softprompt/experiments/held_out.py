"""Prompt tuning scored on rows held out from *train*: how a default is chosen without looking at dev.

One run trains on every train row but the last `held_out`, evaluates on those rows before training
and after the last update (no selection in between), and returns a record with the held-out scores,
the training loss and every resolved setting with its source. `scripts/measure_lr_rule.py` (the lr
rule) and `scripts/measure_recipe.py` (optimizer, schedule, reparameterization) compare settings this way.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from softprompt.core.config import ConfigError, PromptConfig, TrainConfig
from softprompt.core.model import PromptedLM
from softprompt.evaluation.baselines import majority_baseline
from softprompt.tasks.base import Task
from softprompt.training.run import train_prompt
from softprompt.training.trainer import METRICS_NAME


def held_out_run(lm: PromptedLM, task: Task, prompt: PromptConfig, config: TrainConfig, held_out: int,
                 train_split: str = "train", show_progress: bool = False) -> dict[str, Any]:
    """Train on `train_split` minus its last `held_out` rows; score the prompt on those rows before
    training and after `config.max_steps` updates. Settings left None are the library's defaults.
    show_progress: the trainer's progress on stderr (plain lines in a log), for the scripts' long runs."""
    if config.max_steps is None:
        raise ConfigError("max_steps: a held-out run needs a fixed number of updates")
    rows = task.load(train_split)
    if not 0 < held_out < len(rows):
        raise ConfigError(f"held_out: must be between 1 and {len(rows) - 1} ({train_split} has {len(rows)} rows), "
                          f"got {held_out}")
    train, test = rows[:-held_out], rows[-held_out:]
    # one evaluation before training and one after the last update, each on every held-out row (an
    # intermediate_eval_examples left None would be the device's dev subset)
    config = replace(config, eval_every=config.max_steps, intermediate_eval_examples=held_out, max_eval_examples=None)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train_prompt(lm, task, tmp, prompt, config, train, test, show_progress=show_progress)
        seconds = time.perf_counter() - start
        log = [json.loads(line) for line in (Path(tmp) / METRICS_NAME).read_text().splitlines()]
    losses = [r["loss"] for r in log if r["event"] == "train"]
    evals = [r for r in log if r["event"] == "eval"]
    if any(r["examples"] != held_out for r in evals):
        raise AssertionError(f"a held-out evaluation scored {[r['examples'] for r in evals]} rows, not {held_out}")
    primary = task.primary_metric
    majority = majority_baseline(task, train, test)[1][primary] if task.label_words else None
    return {
        "task": task.name, "model": lm.model_id, "train_split": train_split, "held_out": held_out,
        "steps": result.steps, "metric": primary, "held_out_majority": majority,
        "held_out_before": evals[0]["metrics"][primary], "held_out_after": evals[-1]["metrics"][primary],
        "held_out_metrics_after": evals[-1]["metrics"],
        "loss_first_block": losses[0], "loss_last_blocks": statistics.mean(losses[-3:]),
        "loss_max_block": max(losses), "losses": [[r["step"], r["loss"]] for r in log if r["event"] == "train"],
        "settings": result.settings, "warnings": result.warnings, "seconds": round(seconds, 1),
    }

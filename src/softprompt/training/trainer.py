"""The trainer: backprop through the frozen model into the soft prompt only.

Per update: `grad_accum_steps` micro-batches of `batch_size` examples, the text-to-text loss
(mean target-token NLL), one optimizer step on P. Every `eval_every` updates the prompt is
scored on dev; the best one is saved (prompt.safetensors) and a checkpoint is written, so a
killed run resumes (`resume=True`) and finishes with the prompt an uninterrupted run makes.

Run folder:
    prompt.safetensors   the best prompt on dev (the last one when there is no dev set)
    checkpoint.pt        everything a resume needs (atomic)
    metrics.jsonl        one JSON object per log line: train loss, eval metrics
    result.json          the summary of a finished run
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from softprompt.training.checkpoint import TrainState, load_checkpoint, save_checkpoint
from softprompt.core.config import TrainConfig
from softprompt.core.model import PromptedLM
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import PromptMetadata, metadata_for, save_prompt
from softprompt.errors import SoftPromptError
from softprompt.evaluation.evaluator import evaluate
from softprompt.tasks.base import Example, Task

PROMPT_NAME = "prompt.safetensors"
METRICS_NAME = "metrics.jsonl"
RESULT_NAME = "result.json"


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """Adafactor as in the paper (constant lr, no parameter scaling, beta2 decay 0.8,
    no first moment), or Adam."""
    if config.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(
            params,
            lr=config.learning_rate,
            relative_step=False,
            scale_parameter=False,
            warmup_init=False,
            decay_rate=-config.adafactor_decay_rate,
            beta1=None,
            weight_decay=config.weight_decay,
            clip_threshold=1.0,
        )
    return torch.optim.Adam(params, lr=config.learning_rate, betas=config.adam_betas, weight_decay=config.weight_decay)


@dataclass
class TrainResult:
    run_dir: Path
    prompt_path: Path
    steps: int
    seconds: float
    best_metric: float | None
    best_step: int | None
    initial_metrics: dict[str, float] | None
    best_metrics: dict[str, float] | None
    stopped_early: bool

    def to_dict(self) -> dict:
        d = self.__dict__.copy()
        d["run_dir"], d["prompt_path"] = str(self.run_dir), str(self.prompt_path)
        return d


class ExampleStream:
    """The training order: epoch e is a permutation seeded by (seed, e), so the k-th
    example drawn is a pure function of (seed, k) and a resumed run sees the same data."""

    def __init__(self, examples: Sequence[Example], seed: int):
        if not examples:
            raise SoftPromptError("no training examples")
        self.examples = examples
        self.seed = seed
        self._epoch = -1
        self._order: list[int] = []

    def take(self, start: int, count: int) -> list[Example]:
        out = []
        for k in range(start, start + count):
            epoch, pos = divmod(k, len(self.examples))
            if epoch != self._epoch:
                gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                self._order = torch.randperm(len(self.examples), generator=gen).tolist()
                self._epoch = epoch
            out.append(self.examples[self._order[pos]])
        return out


class Trainer:
    """Train `prompt` on `task` with the frozen `lm`.

    on_step(step, loss) is called after every update (tests use it to simulate a kill).
    """

    def __init__(
        self,
        lm: PromptedLM,
        prompt: SoftPrompt,
        task: Task,
        train_examples: Sequence[Example],
        dev_examples: Sequence[Example] | None,
        config: TrainConfig,
        run_dir: str | Path,
        init_name: str = "unknown",
        show_progress: bool = True,
        eval_at_start: bool = True,
        on_step: Callable[[int, float], None] | None = None,
    ):
        self.lm = lm
        self.prompt = prompt
        self.task = task
        self.train_examples = list(train_examples)
        self.dev_examples = list(dev_examples or [])[: config.max_eval_examples]
        self.config = config
        self.run_dir = Path(run_dir)
        self.init_name = init_name
        self.show_progress = show_progress
        self.eval_at_start = eval_at_start
        self.on_step = on_step
        self.prompt.to(lm.device)
        self.optimizer = make_optimizer([self.prompt.weight], config)
        self.state = TrainState()
        self.initial_metrics: dict[str, float] | None = None
        self.best_metrics: dict[str, float] | None = None
        self._add_eos = task.kind == "generation"

    # ---------------------------------------------------------------- helpers
    def _log(self, record: dict) -> None:
        with open(self.run_dir / METRICS_NAME, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _metadata(self) -> PromptMetadata:
        return metadata_for(
            self.lm,
            self.prompt.weight,
            init=self.init_name,
            task=self.task.name,
            label_words=list(self.task.label_words) if self.task.label_words else None,
            train_settings={**self.config.to_dict(), "step": self.state.step},
            best_dev_metric=(
                {"name": self.task.primary_metric, "value": self.state.best_metric, "step": self.state.best_step,
                 "metrics": self.best_metrics}
                if self.state.best_metric is not None else None
            ),
        )

    def _save_prompt(self) -> Path:
        return save_prompt(self.run_dir / PROMPT_NAME, self.prompt.weight, self._metadata())

    def _checkpoint(self) -> None:
        save_checkpoint(self.run_dir, self.prompt.weight, self.optimizer.state_dict(), self.state, self.config.to_dict())

    def _resume(self) -> None:
        payload = load_checkpoint(self.run_dir)
        saved = payload["config"]
        for key in ("batch_size", "grad_accum_steps", "seed", "optimizer", "learning_rate"):
            if saved.get(key) != getattr(self.config, key):
                raise SoftPromptError(
                    f"cannot resume {self.run_dir}: {key} was {saved.get(key)!r} in the checkpoint, now {getattr(self.config, key)!r}"
                )
        with torch.no_grad():
            self.prompt.weight.copy_(payload["prompt"].to(self.prompt.weight.device))
        self.optimizer.load_state_dict(payload["optimizer"])
        self.state = payload["state"]
        # Drop log lines written after the checkpoint: they will be written again.
        log = self.run_dir / METRICS_NAME
        if log.exists():
            kept = [ln for ln in log.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= self.state.step]
            log.write_text("".join(ln + "\n" for ln in kept))
            for ln in kept:
                rec = json.loads(ln)
                if rec.get("event") == "eval" and rec.get("step") == 0:
                    self.initial_metrics = rec["metrics"]
                if rec.get("event") == "eval" and rec.get("step") == self.state.best_step:
                    self.best_metrics = rec["metrics"]

    def _evaluate(self) -> dict[str, float]:
        was = self.prompt.weight.requires_grad
        result = evaluate(self.lm, self.task, self.dev_examples, self.prompt.weight.detach(), self.config.eval_batch_size)
        self.prompt.weight.requires_grad_(was)
        metric = result.metrics[self.task.primary_metric]
        improved = self.state.best_metric is None or metric > self.state.best_metric
        if improved:
            self.state.best_metric, self.state.best_step = metric, self.state.step
            self.state.evals_without_improvement = 0
            self.best_metrics = result.metrics
            self._save_prompt()
        else:
            self.state.evals_without_improvement += 1
        self._log({"event": "eval", "step": self.state.step, "metrics": result.metrics,
                   "improved": improved, "seconds": round(result.seconds, 3)})
        return result.metrics

    # ---------------------------------------------------------------- main loop
    def train(self, resume: bool = False) -> TrainResult:
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self._resume()
        elif (self.run_dir / METRICS_NAME).exists():
            (self.run_dir / METRICS_NAME).unlink()
        stream = ExampleStream(self.train_examples, cfg.seed)
        self.lm.set_activation_checkpointing(cfg.activation_checkpointing)
        has_dev = bool(self.dev_examples)
        start_time = time.perf_counter()
        if has_dev and self.eval_at_start and self.state.step == 0 and self.initial_metrics is None:
            self.initial_metrics = self._evaluate()
            self._checkpoint()

        per_update = cfg.batch_size * cfg.grad_accum_steps
        progress = Progress(
            TextColumn("[bold]train[/]"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            disable=not self.show_progress, transient=False,
        )
        with progress:
            bar = progress.add_task("train", total=cfg.max_steps, completed=self.state.step, loss="-")
            running_loss, running_n = 0.0, 0
            while self.state.step < cfg.max_steps and not self.state.stopped_early:
                self.optimizer.zero_grad(set_to_none=True)
                step_loss = 0.0
                for micro in range(cfg.grad_accum_steps):
                    first = self.state.step * per_update + micro * cfg.batch_size
                    examples = stream.take(first, cfg.batch_size)
                    rows = [self.lm.encode(ex.input, ex.target, add_eos=self._add_eos) for ex in examples]
                    batch = self.lm.build_batch(rows, self.prompt.weight)
                    loss = self.lm.loss(batch) / cfg.grad_accum_steps
                    loss.backward()
                    step_loss += loss.item()
                if not math.isfinite(step_loss):
                    raise SoftPromptError(f"loss became {step_loss} at step {self.state.step + 1}; lower the learning rate")
                self.optimizer.step()
                self.state.step += 1
                running_loss += step_loss
                running_n += 1
                progress.update(bar, advance=1, loss=f"{step_loss:.4f}")
                if self.on_step is not None:
                    self.on_step(self.state.step, step_loss)
                if self.state.step % cfg.log_every == 0 or self.state.step == cfg.max_steps:
                    self._log({"event": "train", "step": self.state.step, "loss": running_loss / running_n,
                               "elapsed": round(time.perf_counter() - start_time, 3)})
                    running_loss, running_n = 0.0, 0
                at_eval = self.state.step % cfg.eval_every == 0 or self.state.step == cfg.max_steps
                if has_dev and at_eval:
                    self._evaluate()
                    patience = cfg.early_stopping_patience
                    if patience is not None and self.state.evals_without_improvement >= patience:
                        self.state.stopped_early = True
                if at_eval or self.state.step % cfg.effective_checkpoint_every == 0:
                    if not has_dev:
                        self._save_prompt()
                    self._checkpoint()

        seconds = time.perf_counter() - start_time
        self.lm.set_activation_checkpointing(0)
        if not (self.run_dir / PROMPT_NAME).exists():
            self._save_prompt()
        result = TrainResult(
            run_dir=self.run_dir, prompt_path=self.run_dir / PROMPT_NAME, steps=self.state.step,
            seconds=seconds, best_metric=self.state.best_metric, best_step=self.state.best_step,
            initial_metrics=self.initial_metrics, best_metrics=self.best_metrics,
            stopped_early=self.state.stopped_early,
        )
        (self.run_dir / RESULT_NAME).write_text(json.dumps(result.to_dict(), indent=2))
        return result

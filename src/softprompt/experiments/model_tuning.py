"""Model tuning: the paper's full fine-tuning baseline, on the same task, loss and evaluation.

Every weight of a PRIVATE COPY of the model trains on the text-to-text loss prompt tuning
uses (PromptedLM.loss with no prompt: mean NLL of the target tokens), on the same example
stream (ExampleStream with the same seed: the k-th example drawn is the one the prompt-tuning
run with that seed draws), and is scored by the same evaluator (rank classification or greedy
generation, then the task's metric) with no prompt. The shared model passed in is never
modified: its weights, requires_grad flags and eval mode are untouched (a deep copy trains,
and is dropped afterwards unless `keep_model=True`).

Optimizer (our choice for a 135M decoder on CPU): AdamW, constant learning rate 5e-5, no
weight decay, no warm-up, gradient norm clipped at 1.0. The paper fine-tunes T5 with
Adafactor at a constant 1e-3; AdamW at a few times 1e-5 is the usual choice for full
fine-tuning of a small decoder-only model (an SST-2 check of 2e-5 / 6e-5 / 2e-4 at 60 steps
is in reports/results.md: all within noise). `optimizer="adafactor"` gives the paper's optimizer family instead
(constant lr, no parameter scaling, beta2 decay 0.8, no first moment).

Length bands (`length_bands`, None: the device's default, on for a CPU): each batch is computed in
bands of rows of similar length, the summed NLL over the batch's target-token count, as prompt
tuning does: the same loss and gradient (for every weight) to float rounding, less padding computed
(dropout, which SmolLM2 and Gemma 3 do not use, draws its masks per pass: the same in expectation).

Evaluation: on `dev_examples` every `eval_every` updates and at the last one; the result
reports the final metrics and the best (by the task's primary metric) with its step.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, Sequence

import torch

from softprompt.core.batching import row_bands
from softprompt.core.config import ConfigError, TrainConfig
from softprompt.core.model import PromptedLM
from softprompt.core.scoring import mean_nll
from softprompt.errors import SoftPromptError
from softprompt.evaluation.evaluator import evaluate
from softprompt.progress import ProgressReporter
from softprompt.tasks.base import Example, Task
from softprompt.training.defaults import profile_for
from softprompt.training.sampling import ExampleStream, token_length


@dataclass(frozen=True)
class ModelTuningConfig:
    """How to fine-tune every weight. max_steps counts optimizer updates of batch_size
    examples; eval_every None evaluates only after the last update."""

    optimizer: Literal["adamw", "adafactor"] = "adamw"
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    batch_size: int = 8
    max_steps: int = 100
    eval_every: int | None = None
    eval_at_start: bool = False
    max_eval_examples: int | None = None
    eval_batch_size: int = 16
    max_input_tokens: int = 256
    log_every: int = 10
    seed: int = 0
    group_by_length: bool = TrainConfig.group_by_length  # as prompt tuning: the same batches
    length_bands: bool | None = None  # None: the device profile's (training.defaults), as prompt tuning

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "adafactor"):
            raise ConfigError(f"optimizer: must be adamw or adafactor, got {self.optimizer!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate: must be positive, got {self.learning_rate!r}")
        for name in ("batch_size", "max_steps", "eval_batch_size", "max_input_tokens", "log_every"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"{name}: must be a positive integer, got {value!r}")
        if self.length_bands is not None and not isinstance(self.length_bands, bool):
            raise ConfigError(f"length_bands: must be true, false or None (the device's default), got {self.length_bands!r}")
        for name in ("eval_every", "max_eval_examples"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"{name}: must be a positive integer or None, got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelTuningResult:
    task: str
    steps: int
    train_seconds: float
    eval_seconds: float
    final_metrics: dict[str, float] | None
    best_metrics: dict[str, float] | None
    best_step: int | None
    initial_metrics: dict[str, float] | None
    losses: list[tuple[int, float]]
    config: dict
    trainable_parameters: int
    dev_examples: int
    model: PromptedLM | None = field(default=None, repr=False)

    @property
    def seconds(self) -> float:
        return self.train_seconds + self.eval_seconds

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "model"}
        d["seconds"] = self.seconds
        return d


def private_copy(lm: PromptedLM) -> PromptedLM:
    """A deep copy of lm's model in its own PromptedLM (frozen and in eval mode, like any)."""
    return PromptedLM(copy.deepcopy(lm.model), lm.tokenizer, lm.model_id, lm.max_input_tokens)


def _optimizer(params, config: ModelTuningConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=config.learning_rate, relative_step=False, scale_parameter=False,
                         warmup_init=False, decay_rate=-0.8, beta1=None, weight_decay=config.weight_decay,
                         clip_threshold=1.0)
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)


def tune_model(
    lm: PromptedLM,
    task: Task,
    train_examples: Sequence[Example],
    dev_examples: Sequence[Example] | None,
    config: ModelTuningConfig | None = None,
    run_dir: str | Path | None = None,
    keep_model: bool = False,
    on_step=None,
    show_progress: bool = False,
) -> ModelTuningResult:
    """Fine-tune every weight of a copy of `lm` on `task`; evaluate with no prompt.

    run_dir (optional) receives metrics.jsonl (train loss / eval lines) and result.json.
    show_progress: a bar on a terminal, plain lines (step, loss, elapsed, eta) in a log, as
    `softprompt train` shows them; a run takes minutes to hours on a CPU.
    """
    config = config or ModelTuningConfig()
    if config.length_bands is None:  # recorded resolved, as prompt tuning records its defaults
        config = replace(config, length_bands=profile_for(lm.device).length_bands)
    dev = list(dev_examples or [])[: config.max_eval_examples]
    add_eos = task.kind == "generation"
    tuned = private_copy(lm)
    params = list(tuned.model.parameters())
    for p in params:
        p.requires_grad_(True)
    n_params = sum(p.numel() for p in {id(p): p for p in params}.values())
    torch.manual_seed(config.seed)
    optimizer = _optimizer(params, config)
    stream = ExampleStream(list(train_examples), config.seed, config.batch_size if config.group_by_length else None,
                           token_length(lm, config.max_input_tokens, add_eos))
    log_path = None
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        log_path = Path(run_dir) / "metrics.jsonl"
        log_path.write_text("")

    def log(record: dict) -> None:
        if log_path is not None:
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    eval_seconds = 0.0
    best_metrics: dict[str, float] | None = None
    best_step: int | None = None
    final_metrics: dict[str, float] | None = None
    initial_metrics: dict[str, float] | None = None

    reporter = ProgressReporter("model tuning", config.max_steps, enabled=show_progress)

    def run_eval(step: int) -> dict[str, float]:
        nonlocal eval_seconds, best_metrics, best_step
        tuned.model.eval()
        with reporter.child(f"eval step {step}", len(dev), "examples") as bar:
            result = evaluate(tuned, task, dev, None, config.eval_batch_size, progress=bar.advance,
                              max_input_tokens=config.max_input_tokens)
        tuned.model.train()
        eval_seconds += result.seconds
        metric = result.metrics[task.primary_metric]
        if best_metrics is None or metric > best_metrics[task.primary_metric]:
            best_metrics, best_step = result.metrics, step
        log({"event": "eval", "step": step, "metrics": result.metrics, "seconds": round(result.seconds, 3)})
        return result.metrics

    with reporter:
        try:
            if dev and config.eval_at_start:
                initial_metrics = run_eval(0)
            tuned.model.train()
            losses: list[tuple[int, float]] = []
            train_seconds = 0.0
            running, running_n = 0.0, 0
            for step in range(1, config.max_steps + 1):
                start = time.perf_counter()
                examples = stream.take((step - 1) * config.batch_size, config.batch_size)
                rows = [tuned.encode(ex.input, ex.target, add_eos=add_eos, max_input_tokens=config.max_input_tokens)
                        for ex in examples]
                optimizer.zero_grad(set_to_none=True)
                loss = mean_nll(tuned, rows, None, row_bands(rows, 0, bool(config.length_bands)))
                loss.backward()
                value = loss.item()
                if not math.isfinite(value):
                    raise SoftPromptError(f"model tuning: loss became {value} at step {step}; lower the learning rate")
                if config.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                train_seconds += time.perf_counter() - start
                running, running_n = running + value, running_n + 1
                reporter.advance(loss=value)
                if on_step is not None:
                    on_step(step, value)
                if step % config.log_every == 0 or step == config.max_steps:
                    losses.append((step, running / running_n))
                    log({"event": "train", "step": step, "loss": running / running_n, "elapsed": round(train_seconds, 3)})
                    running, running_n = 0.0, 0
                at_eval = step == config.max_steps or (config.eval_every is not None and step % config.eval_every == 0)
                if dev and at_eval:
                    metrics = run_eval(step)
                    if step == config.max_steps:
                        final_metrics = metrics
        finally:
            tuned.model.eval()
            for p in params:
                p.requires_grad_(False)
            del optimizer

    result = ModelTuningResult(
        task=task.name, steps=config.max_steps, train_seconds=train_seconds, eval_seconds=eval_seconds,
        final_metrics=final_metrics, best_metrics=best_metrics, best_step=best_step,
        initial_metrics=initial_metrics, losses=losses, config=config.to_dict(),
        trainable_parameters=n_params, dev_examples=len(dev), model=tuned if keep_model else None,
    )
    if run_dir is not None:
        (Path(run_dir) / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result

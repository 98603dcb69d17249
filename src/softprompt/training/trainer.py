"""The trainer: backprop through the frozen model into the soft prompt only.

Per update: `grad_accum_steps` micro-batches of `batch_size` examples, the text-to-text loss
(mean target-token NLL), one optimizer step on P. With `length_bands` (the CPU default) a
micro-batch is computed in bands of rows of similar length, one pass each, and the NLL summed over
them: the same loss, less compute spent on padding. Every `eval_every` updates the prompt is
scored on dev (or on a seeded subset of it: `intermediate_eval_examples`); the best one is
saved (prompt.safetensors) and a checkpoint is written, so a killed run resumes
(`resume=True`) and finishes with the prompt an uninterrupted run makes; a finished run resumed
with a larger `max_steps` goes on to it, as a run started with that budget. A resume refuses a
changed setting that decides the data order, the update or model selection. When the evaluations
used a subset, the best prompt is finally scored on the whole dev set.

Under torchrun (training.distributed) each rank trains on its share of every global batch and
the prompt's gradient is summed over ranks, so N processes make the single process's prompt;
evaluations are shared out too, and only rank 0 writes the run folder.

Run folder:
    prompt.safetensors   the best prompt on dev (the last one when there is no dev set)
    checkpoint.pt        everything a resume needs (atomic)
    metrics.jsonl        one JSON object per log line: train loss, eval metrics
    result.json          the summary of a finished run, with every setting and its source
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from softprompt.core.batching import row_bands
from softprompt.core.config import PRE_SETTING_VALUES, ConfigError, PromptConfig, TrainConfig
from softprompt.core.model import PromptedLM
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import PromptMetadata, metadata_for, read_prompt, save_prompt
from softprompt.core.reparameterization import RELATIVE_PARAMETERS, ResidualReparameterization
from softprompt.core.scoring import choice_loss, mean_nll, summed_nll_in_bands
from softprompt.errors import SoftPromptError
from softprompt.evaluation.evaluator import EvalResult
from softprompt.fileio import atomic_write
from softprompt.progress import ProgressReporter
from softprompt.tasks.base import Example, Task
from softprompt.training.checkpoint import ResumeMismatch, TrainState, load_checkpoint, save_checkpoint
from softprompt.training.defaults import resolve_settings
from softprompt.training.distributed import ProcessGroup, current, evaluate_sharded
from softprompt.training.loss_watch import LOSS_WATCH_KINDS, LossWatch, label_entropy
from softprompt.training.sampling import ExampleStream, token_length

PROMPT_NAME = "prompt.safetensors"
METRICS_NAME = "metrics.jsonl"
RESULT_NAME = "result.json"


def parameter_groups(prompt: SoftPrompt, config: TrainConfig) -> list[dict]:
    """The prompt's trainable parameters in optimizer groups: P (and a reparameterization's
    LayerNorm) at learning_rate; a reparameterization's weight matrices at steps relative to their
    RMS (Adafactor's parameter scaling; for Adam, reparam_relative_lr x the matrix's initial RMS)."""
    absolute: list[torch.nn.Parameter] = [prompt.weight]
    relative: list[torch.nn.Parameter] = []
    if prompt.reparameterization is not None:
        for name, param in prompt.reparameterization.named_parameters():
            (relative if name in RELATIVE_PARAMETERS else absolute).append(param)
    groups: list[dict] = [{"params": absolute}]
    if config.optimizer == "adafactor":
        groups += [{"params": relative, "lr": config.reparam_relative_lr, "scale_parameter": True}] if relative else []
    else:
        groups += [{"params": [param], "lr": config.reparam_relative_lr * float(param.detach().pow(2).mean().sqrt())}
                   for param in relative]
    return groups


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """Adafactor as in the paper (constant lr, no parameter scaling, beta2 decay 0.8,
    no first moment), or Adam. `params`: tensors or groups (parameter_groups); a group without
    its own lr takes learning_rate."""
    if config.learning_rate is None:
        raise ConfigError("learning_rate: None (auto) is resolved by training.defaults.resolve_settings")
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


def lr_factor(schedule: str, update: int, max_steps: int) -> float:
    """The multiple of each group's base lr that update number `update` (1 = the first) takes:
    a function of the update number alone, so a resumed run steps as an uninterrupted one."""
    if schedule == "linear":
        return 1.0 - (update - 1) / max_steps
    return 1.0


def _ends_the_run(record: dict, step: int) -> bool:
    """A log record written after the training loop because the run ended at `step`: the final
    evaluation and the no-gain warning. Every resume writes them again."""
    return record.get("step") == step and (record.get("event") == "final_eval" or record.get("kind") == "no_gain")


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
    # the best prompt on the whole dev set, when the evaluations during training used a subset
    final_metrics: dict[str, float] | None = None
    # the kept prompt's score on the whole dev set, whichever evaluation measured it:
    # {"metrics", "examples", "measured_by": "final evaluation" | "best evaluation"}
    dev_score: dict | None = None
    settings: dict | None = None
    warnings: list[str] | None = None
    run: dict | None = None  # how the run was started (command, model load time), from the caller

    def to_dict(self) -> dict:
        d = self.__dict__.copy()
        d["run_dir"], d["prompt_path"] = str(self.run_dir), str(self.prompt_path)
        return d


def _subset_index(n: int, size: int | None, seed: int) -> list[int]:
    """Indices of a seeded random subset of `size` of n examples, in their original order (all
    when size is None or covers them): evaluations on a subset that is not skewed the way a
    file's first rows can be."""
    if size is None or size >= n:
        return list(range(n))
    gen = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n, generator=gen)[:size].tolist())


def _check_choices(task: Task, examples: Sequence[Example]) -> None:
    """The choices objective needs every training example's gold target among its options."""
    for i, ex in enumerate(examples):
        if ex.options is None:
            raise SoftPromptError(f"objective 'choices' needs a classification task; {task.name!r} example {i + 1} "
                                  "has no options (a generation task): use the objective 'lm'")
        if ex.target not in ex.options:
            raise SoftPromptError(f"objective 'choices': {task.name!r} training example {i + 1} has the target "
                                  f"{ex.target!r}, which is not one of its options {list(ex.options)!r}")


class Trainer:
    """Train `prompt` on `task` with the frozen `lm`.

    on_step(step, loss) is called after every update (tests use it to simulate a kill).
    Settings left "auto" (None) in `config` are resolved for `lm` (training.defaults);
    `settings` (what api.train resolved, with the source of each value) goes into result.json.
    `group`: the training processes (default: the initialised torch.distributed group, if any).
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
        settings: dict | None = None,
        run_info: dict | None = None,
        group: ProcessGroup | None = None,
    ):
        if not config.is_resolved:
            resolved = resolve_settings(lm, PromptConfig(length=prompt.length), config)
            config, settings = resolved.train, settings or resolved.to_dict()
        assert config.max_steps is not None and config.eval_every is not None and config.batch_size is not None
        self.group = group or current()
        if config.batch_size < self.group.world_size:
            raise ConfigError(f"batch_size: {config.batch_size} is the global micro-batch, shared by "
                              f"{self.group.world_size} processes; it needs at least one example per process")
        self.lm = lm
        self.prompt = prompt
        self.task = task
        self.train_examples = list(train_examples)
        self.dev_examples = list(dev_examples or [])[: config.max_eval_examples]
        self.eval_index = _subset_index(len(self.dev_examples), config.intermediate_eval_examples, config.seed)
        self.eval_examples = [self.dev_examples[i] for i in self.eval_index]
        self.config = config
        self.settings = settings or {"train": config.to_dict()}
        self.run_info = run_info
        self.run_dir = Path(run_dir)
        self.init_name = init_name
        self.show_progress = show_progress and self.group.is_main
        self.eval_at_start = eval_at_start
        self.on_step = on_step
        if config.reparameterization == "residual" and prompt.reparameterization is None:
            prompt.reparameterization = ResidualReparameterization(prompt.embed_dim, config.reparam_hidden,
                                                                   seed=config.seed)
        self.prompt.to(lm.device)
        for param in self.prompt.parameters():  # every rank starts from rank 0's prompt
            self.group.broadcast_(param.data)
        self.optimizer = make_optimizer(parameter_groups(self.prompt, config), config)
        for param_group in self.optimizer.param_groups:  # what the lr schedule multiplies
            param_group.setdefault("base_lr", param_group["lr"])
        self.state = TrainState()
        self.initial_metrics: dict[str, float] | None = None
        self.best_metrics: dict[str, float] | None = None
        self.final_metrics: dict[str, float] | None = None
        self.loss_watch = LossWatch(config.learning_rate or 0.0, config.max_steps,
                                    prior_entropy=self._label_prior_entropy())
        self.warnings: list[str] = []
        self._add_eos = task.kind == "generation"
        if config.objective == "choices":
            _check_choices(task, self.train_examples)
        self._reporter: ProgressReporter | None = None

    # ---------------------------------------------------------------- helpers
    def _label_prior_entropy(self) -> float | None:
        """The entropy of the training labels where the text-to-text loss is comparable with it (every
        label one target token, so the mean token NLL is the mean example NLL); else None."""
        if self.config.objective != "lm" or not self.task.label_words or not self.train_examples:
            return None
        targets = [ex.target for ex in self.train_examples]
        probe = self.train_examples[0].input
        if any(len(self.lm.encode(probe, label).target_ids) != 1 for label in set(targets)):
            return None
        return label_entropy(targets)

    def _log(self, record: dict) -> None:
        if not self.group.is_main:
            return
        with open(self.run_dir / METRICS_NAME, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _metadata(self) -> PromptMetadata:
        return metadata_for(
            self.lm,
            self.prompt.materialise(),
            init=self.init_name,
            task=self.task.name,
            label_words=list(self.task.label_words) if self.task.label_words else None,
            train_settings={**self.config.to_dict(), "step": self.state.step},
            task_format=self.task.format if self.task.formats else None,
            max_input_tokens=self.config.max_input_tokens,
            best_dev_metric=(
                {"name": self.task.primary_metric, "value": self.state.best_metric, "step": self.state.best_step,
                 "metrics": self.best_metrics}
                if self.state.best_metric is not None else None
            ),
        )

    def _save_prompt(self) -> Path:
        if not self.group.is_main:
            return self.run_dir / PROMPT_NAME
        return save_prompt(self.run_dir / PROMPT_NAME, self.prompt.materialise(), self._metadata())

    def _checkpoint(self) -> None:
        if self.group.is_main:
            reparameterization = self.prompt.reparameterization
            save_checkpoint(self.run_dir, self.prompt.weight, self.optimizer.state_dict(), self.state, self.config.to_dict(),
                            reparameterization=None if reparameterization is None else reparameterization.state_dict())

    def _resume(self) -> None:
        """Rank 0 reads the checkpoint and the log; every rank continues from what it read."""
        restored = self.group.run_on_main(self._read_run)
        with torch.no_grad():
            self.prompt.weight.copy_(restored["prompt"].to(self.prompt.weight.device))
        if self.prompt.reparameterization is not None:
            self.prompt.reparameterization.load_state_dict(restored["reparameterization"])
        self.optimizer.load_state_dict(restored["optimizer"])
        self.state = restored["state"]
        self.initial_metrics, self.best_metrics = restored["initial_metrics"], restored["best_metrics"]
        self.loss_watch, self.warnings = restored["loss_watch"], restored["warnings"]

    def _read_run(self) -> dict:
        payload = load_checkpoint(self.run_dir)
        saved = payload["config"]
        # what decides the data order and the update
        keys = ["batch_size", "grad_accum_steps", "seed", "optimizer", "learning_rate", "group_by_length",
                "objective", "length_bands", "lr_schedule", "reparameterization", "reparam_hidden", "reparam_relative_lr"]
        if self.config.lr_schedule != "constant":
            keys.append("max_steps")  # a decaying schedule's slope depends on it
        # what decides model selection: the dev rows every evaluation scores (the best metric so
        # far was measured on them), and, until the run's planned end, when it evaluates and stops
        keys += ["max_eval_examples", "intermediate_eval_examples"]
        state: TrainState = payload["state"]
        if state.step < saved.get("max_steps", state.step):
            keys += ["eval_every", "early_stopping_patience"]
        for key in keys:
            was = saved.get(key, PRE_SETTING_VALUES.get(key))
            if was != getattr(self.config, key):
                raise ResumeMismatch(self.run_dir, key, was, getattr(self.config, key))
        assert self.config.max_steps is not None
        if state.step < self.config.max_steps and state.stopped_early:
            raise SoftPromptError(
                f"cannot resume {self.run_dir} for more updates: it stopped early at update {state.step} "
                f"(early_stopping_patience {self.config.early_stopping_patience}); start over in a fresh or overwritten run folder")
        restored = {"prompt": payload["prompt"], "optimizer": payload["optimizer"], "state": state,
                    "reparameterization": payload.get("reparameterization"),
                    "initial_metrics": None, "best_metrics": None, "loss_watch": self.loss_watch,
                    "warnings": list(self.warnings)}
        # Keep the log up to the checkpoint, less the records of the run's end there, and judge the
        # loss again block by block with this run's max_steps: a longer --steps moves where a flat
        # loss and the label prior are judged, so the log and warnings become the longer run's.
        log = self.run_dir / METRICS_NAME
        if log.exists():
            watch: LossWatch = restored["loss_watch"]
            kept: list[str] = []
            for line in log.read_text().splitlines():
                rec = json.loads(line) if line.strip() else None
                if rec is None or rec.get("step", 0) > state.step or _ends_the_run(rec, state.step):
                    continue
                if rec.get("event") == "warning" and rec.get("kind") in LOSS_WATCH_KINDS:
                    continue  # judged again below
                kept.append(line)
                if rec.get("event") == "eval" and rec.get("step") == 0:
                    restored["initial_metrics"] = rec.get("full_metrics", rec["metrics"])
                if rec.get("event") == "eval" and rec.get("step") == state.best_step:
                    restored["best_metrics"] = rec["metrics"]
                if rec.get("event") == "train":
                    warning = watch.observe(rec["step"], rec["loss"])
                    if warning is not None:
                        kept.append(json.dumps(warning.to_dict()))
                        restored["warnings"].append(warning.message)
                if rec.get("event") == "warning":
                    watch.warned.add(rec["kind"])
                    restored["warnings"].append(rec["message"])
            log.write_text("".join(line + "\n" for line in kept))
        return restored

    def _score(self, prompt: torch.Tensor, examples: Sequence[Example], label: str) -> EvalResult:
        """Evaluate with progress shown (a bar on a terminal, plain lines in a log)."""
        if self._reporter is not None:
            reporter = self._reporter.child(label, len(examples), "examples")
        else:
            reporter = ProgressReporter(label, len(examples), unit="examples", enabled=self.show_progress)
        with reporter:
            return evaluate_sharded(self.group, self.lm, self.task, examples, prompt, self.config.eval_batch_size,
                                    progress=reporter.advance, max_input_tokens=self.config.max_input_tokens)

    def _evaluate(self) -> dict[str, float]:
        """Score the prompt for model selection (on the subset); at step 0 on the whole dev set,
        so the "before training" figure is comparable with the final one."""
        full_metrics = None
        on_subset = len(self.eval_examples) < len(self.dev_examples)
        if self.state.step == 0 and on_subset:
            full = self._score(self.prompt.materialise(), self.dev_examples, "eval step 0 (whole dev set)")
            full_metrics = full.metrics
            predictions = [full.predictions[i] for i in self.eval_index]
            result = EvalResult(self.task.compute_metrics(predictions, self.eval_examples), predictions,
                                seconds=full.seconds)
        else:
            label = f"eval step {self.state.step}" + (f" ({len(self.eval_examples)} dev examples)" if on_subset else "")
            result = self._score(self.prompt.materialise(), self.eval_examples, label)
        metric = result.metrics[self.task.primary_metric]
        improved = self.state.best_metric is None or metric > self.state.best_metric
        if improved:
            self.state.best_metric, self.state.best_step = metric, self.state.step
            self.state.evals_without_improvement = 0
            self.best_metrics = result.metrics
            self._save_prompt()
        else:
            self.state.evals_without_improvement += 1
        record = {"event": "eval", "step": self.state.step, "metrics": result.metrics,
                  "examples": len(self.eval_examples), "improved": improved, "seconds": round(result.seconds, 3)}
        if full_metrics is not None:
            record.update(full_metrics=full_metrics, full_examples=len(self.dev_examples))
        self._log(record)
        return full_metrics or result.metrics

    def _final_evaluation(self) -> None:
        """Score the best prompt on the whole dev set when the evaluations used a subset."""
        if len(self.eval_examples) == len(self.dev_examples):
            return
        path = self.run_dir / PROMPT_NAME
        saved = self.group.run_on_main(lambda: read_prompt(path).tensor if path.exists() else None)
        if saved is None:
            return
        best = saved.to(self.lm.device)
        result = self._score(best, self.dev_examples, "final eval (whole dev set)")
        self.final_metrics = result.metrics
        self._log({"event": "final_eval", "step": self.state.step, "best_step": self.state.best_step,
                   "metrics": result.metrics, "examples": len(self.dev_examples),
                   "seconds": round(result.seconds, 3)})

    def _dev_score(self) -> dict | None:
        """The kept prompt on the whole dev set: the final evaluation when the evaluations used a
        subset, else the best evaluation itself (None when neither measured it)."""
        if self.final_metrics is not None:
            return {"metrics": self.final_metrics, "examples": len(self.dev_examples),
                    "measured_by": "final evaluation"}
        if self.best_metrics is not None and len(self.eval_examples) == len(self.dev_examples):
            return {"metrics": self.best_metrics, "examples": len(self.dev_examples),
                    "measured_by": "best evaluation"}
        return None

    def _warn_if_nothing_beat_the_start(self) -> None:
        """The kept prompt is the untrained one: the run learned nothing dev can see, which a
        summary that only prints the best score would hide."""
        if self.state.best_step != 0 or self.state.step == 0 or "no_gain" in self.loss_watch.warned:
            return
        message = (f"no evaluation after training beat the initial prompt (best at update 0 of {self.state.step}): "
                   "the saved prompt is the untrained one; try more updates (--steps), a longer prompt "
                   "(--prompt-length) or other label words")
        self.loss_watch.warned.add("no_gain")
        self.warnings.append(message)
        self._log({"event": "warning", "step": self.state.step, "kind": "no_gain", "message": message})

    def _watch_loss(self, block_loss: float) -> None:
        warning = self.loss_watch.observe(self.state.step, block_loss)
        if warning is not None:
            self.warnings.append(warning.message)
            self._log(warning.to_dict())
            if self._reporter is not None:
                self._reporter.note(warning.message)

    # ---------------------------------------------------------------- one update
    def _local_examples(self, stream: ExampleStream, first: int) -> list[Example]:
        """This rank's share of the global micro-batch starting at example `first`."""
        assert self.config.batch_size is not None
        return self.group.shard(stream.take(first, self.config.batch_size))

    def _micro_batch_loss(self, examples: Sequence[Example]) -> torch.Tensor:
        """This rank's part of the loss of the global micro-batch, divided by grad_accum_steps.

        objective "lm": the mean target-token NLL; across ranks each sums its own tokens' NLL over
        the global token count. "choices": the mean over examples of the gold option's
        cross-entropy, summed per rank over the global example count. Either way the parts (and
        their gradients) add up to the single process's."""
        cfg = self.config
        prompt = self.prompt()  # [length, embed]; through the reparameterization when there is one
        if cfg.objective == "choices":
            per_option = [[self.lm.encode(ex.input, option, max_input_tokens=cfg.max_input_tokens)
                           for option in ex.choices] for ex in examples]
            answers = [ex.choices.index(ex.target) for ex in examples]
            total = choice_loss(self.lm, per_option, answers, prompt, in_bands=bool(cfg.length_bands))
            count = self.group.sum(torch.tensor(float(len(examples)), device=self.lm.device))
            return total / (count * cfg.grad_accum_steps)
        rows = [self.lm.encode(ex.input, ex.target, add_eos=self._add_eos, max_input_tokens=cfg.max_input_tokens)
                for ex in examples]
        bands = row_bands(rows, prompt.shape[0], bool(cfg.length_bands))
        if not self.group.enabled:  # one band: one padded pass, computed as runs before bands were
            return mean_nll(self.lm, rows, prompt, bands) / cfg.grad_accum_steps
        # the summed NLL over the global target-token count: the mean of one padded pass, however
        # the rows are cut into bands and shared out over ranks
        nll = summed_nll_in_bands(self.lm, rows, prompt, bands)
        tokens = torch.tensor(float(sum(len(row.target_ids) for row in rows)), device=self.lm.device)
        return nll / (self.group.sum(tokens) * cfg.grad_accum_steps)

    def _sum_over_ranks(self, loss: float) -> float:
        """Sum the gradient of every trainable parameter (P, and a reparameterization's) and the
        update's loss over ranks (a no-op in one process)."""
        if not self.group.enabled:
            return loss
        for param in self.prompt.parameters():
            if param.grad is None:
                param.grad = torch.zeros_like(param)
            self.group.sum(param.grad)
        return float(self.group.sum(torch.tensor(loss, dtype=torch.float64, device=self.lm.device)).item())

    # ---------------------------------------------------------------- main loop
    def train(self, resume: bool = False) -> TrainResult:
        cfg = self.config
        if self.group.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self._resume()
        elif self.group.is_main and (self.run_dir / METRICS_NAME).exists():
            (self.run_dir / METRICS_NAME).unlink()
        # resolved in __init__; the asserts tell the type checker
        assert cfg.max_steps is not None and cfg.batch_size is not None and cfg.eval_every is not None
        assert cfg.learning_rate is not None
        per_update = cfg.batch_size * cfg.grad_accum_steps
        # grouped per update, so an update sees the same examples however it is split into micro-batches
        stream = ExampleStream(self.train_examples, cfg.seed, per_update if cfg.group_by_length else None,
                               token_length(self.lm, cfg.max_input_tokens, self._add_eos))
        self.lm.set_activation_checkpointing(cfg.activation_checkpointing)
        has_dev = bool(self.dev_examples)
        start_time = time.perf_counter()
        if has_dev and self.eval_at_start and self.state.step == 0 and self.initial_metrics is None:
            self.initial_metrics = self._evaluate()
            self._checkpoint()

        reporter = ProgressReporter("train", cfg.max_steps, completed=self.state.step, enabled=self.show_progress)
        self._reporter = reporter
        with reporter:
            running_loss, running_n = 0.0, 0
            while self.state.step < cfg.max_steps and not self.state.stopped_early:
                self.optimizer.zero_grad(set_to_none=True)
                step_loss = 0.0
                for micro in range(cfg.grad_accum_steps):
                    first = self.state.step * per_update + micro * cfg.batch_size
                    loss = self._micro_batch_loss(self._local_examples(stream, first))
                    loss.backward()
                    step_loss += loss.item()
                step_loss = self._sum_over_ranks(step_loss)
                if not math.isfinite(step_loss):
                    raise SoftPromptError(
                        f"loss became {step_loss} at step {self.state.step + 1}: the learning rate "
                        f"{cfg.learning_rate:g} is too large for this model; try --lr {cfg.learning_rate / 3:.3g}")
                factor = lr_factor(cfg.lr_schedule, self.state.step + 1, cfg.max_steps)
                for param_group in self.optimizer.param_groups:
                    param_group["lr"] = param_group["base_lr"] * factor
                self.optimizer.step()
                self.state.step += 1
                running_loss += step_loss
                running_n += 1
                reporter.advance(1, loss=step_loss)
                if self.on_step is not None:
                    self.on_step(self.state.step, step_loss)
                if self.state.step % cfg.log_every == 0 or self.state.step == cfg.max_steps:
                    block_loss = running_loss / running_n
                    self._log({"event": "train", "step": self.state.step, "loss": block_loss,
                               "elapsed": round(time.perf_counter() - start_time, 3)})
                    self._watch_loss(block_loss)
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
        self._reporter = None
        if has_dev:
            self._final_evaluation()
            self._warn_if_nothing_beat_the_start()

        seconds = time.perf_counter() - start_time
        self.lm.set_activation_checkpointing(0)
        if not (self.run_dir / PROMPT_NAME).exists():
            self._save_prompt()
        result = TrainResult(
            run_dir=self.run_dir, prompt_path=self.run_dir / PROMPT_NAME, steps=self.state.step,
            seconds=seconds, best_metric=self.state.best_metric, best_step=self.state.best_step,
            initial_metrics=self.initial_metrics, best_metrics=self.best_metrics,
            stopped_early=self.state.stopped_early, final_metrics=self.final_metrics,
            dev_score=self._dev_score() if has_dev else None,
            settings={**self.settings, "train": self.config.to_dict()}, warnings=list(self.warnings),
            run=self.run_info,
        )
        if self.group.is_main:
            text = json.dumps(result.to_dict(), indent=2) + "\n"
            atomic_write(self.run_dir / RESULT_NAME, lambda tmp: Path(tmp).write_text(text))
        self.group.barrier()  # returning means the run folder is complete, on every rank
        return result

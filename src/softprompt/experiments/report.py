"""The comparison report (reports/results.md): prompt design vs prompt tuning vs model tuning
vs prompt ensembles, for one frozen model on several tasks, sized for a CPU.

Two steps, so the expensive part can be split into short runs (one task, or one method of a
task, per run) that other jobs can interleave with:

    python -m softprompt.cli.experiments report-run --task cb        # appends to reports/results.json
    python -m softprompt.cli.experiments report-build                 # results.json -> results.md

Methods, all on the same dev examples (the first `max_dev` of the dev split):
    majority  no model: every dev example gets the train split's most frequent label (tasks
              with label words only), the floor the others must clear
    design    the task's hand-written prompt (experiments.prompt_design), zero-shot
    prompt    prompt tuning, one run per seed (seeds 0..n-1); no dev evaluation during
              training: the prompt after the last step is the one scored
    ensemble  the seeds' prompts scored in shared batches (evaluation.ensemble): each
              prompt's metrics (the `prompt` row reports seed 0's), their average, the best,
              and the majority-vote ensemble
    model     model tuning (experiments.model_tuning): every weight of a copy of the model,
              scored after the last step

Each record keeps its exact command, step count, examples seen, dev examples and wall time.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Sequence, cast

import torch

from softprompt.core.config import PRE_SETTING_VALUES, PromptConfig, TrainConfig
from softprompt.core.model import PromptedLM
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import load_prompt
from softprompt.errors import SoftPromptError
from softprompt.evaluation.baselines import majority_baseline
from softprompt.evaluation.ensemble import evaluate_ensemble
from softprompt.experiments.model_tuning import ModelTuningConfig, tune_model
from softprompt.experiments.prompt_design import evaluate_prompt_design
from softprompt.experiments.study_sections import reproducing_command
from softprompt.fileio import atomic_write
from softprompt.progress import ProgressReporter
from softprompt.tasks.base import Task
from softprompt.training.run import train_prompt
from softprompt.training.trainer import Trainer

REPORT_TASKS: tuple[str, ...] = ("sst2", "rte", "cb", "copa", "wic", "mrpc")
METHODS: tuple[str, ...] = ("majority", "design", "defaults", "prompt", "ensemble", "model")


@dataclass
class ReportSettings:
    """Everything a report run depends on (stored with its results)."""

    model: str = "smollm2"
    prompt_length: int = 20
    init: str = "class-label"
    optimizer: str = "adam"
    learning_rate: float = 3e-3
    batch_size: int = 8
    steps: dict[str, int] = field(default_factory=dict)  # per task; `default_steps` otherwise
    default_steps: int = 100
    seeds: int = 3
    model_optimizer: str = "adamw"
    model_learning_rate: float = 5e-5
    model_steps: dict[str, int] = field(default_factory=dict)  # per task; the task's prompt steps otherwise
    model_length_bands: bool | None = None  # None: the device's default (ModelTuningConfig.length_bands)
    max_dev: int = 300
    max_dev_per_task: dict[str, int] = field(default_factory=dict)  # overrides max_dev for a task
    max_input_tokens: int = 256
    max_input_tokens_per_task: dict[str, int] = field(default_factory=dict)  # overrides max_input_tokens
    eval_batch_size: int = 16
    # the split each task trains on (default "train"), e.g. BoolQ's 32-example FewGLUE file
    train_split_per_task: dict[str, str] = field(default_factory=dict)
    hparams_source: str = "fallback"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # checked here, so a settings file or a CLI flag with a bad value fails before any model loads
        if self.model_length_bands is not None and not isinstance(self.model_length_bands, bool):
            raise SoftPromptError(f"report setting model_length_bands must be true, false or null (the device's "
                                  f"default), got {self.model_length_bands!r}")
        for name in ("learning_rate", "model_learning_rate"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise SoftPromptError(f"report setting {name} must be a positive number, got {value!r}")
        counts = [(name, getattr(self, name)) for name in ("prompt_length", "batch_size", "default_steps", "seeds",
                                                              "max_dev", "max_input_tokens", "eval_batch_size")]
        counts += [(f"{name}[{task!r}]", value) for name in ("steps", "model_steps", "max_dev_per_task",
                                                             "max_input_tokens_per_task")
                   for task, value in getattr(self, name).items()]
        for name, value in counts:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SoftPromptError(f"report setting {name} must be a positive integer, got {value!r}")

    def steps_for(self, task: str) -> int:
        return self.steps.get(task, self.default_steps)

    def max_input_tokens_for(self, task: str) -> int:
        return self.max_input_tokens_per_task.get(task, self.max_input_tokens)

    def init_for(self, task: Task) -> str:
        """class-label needs label words: tasks with per-example options (COPA) get sampled-vocab."""
        return "sampled-vocab" if self.init == "class-label" and not task.label_words else self.init

    def train_split_for(self, task: str) -> str:
        return self.train_split_per_task.get(task, "train")

    def max_dev_for(self, task: str) -> int:
        return self.max_dev_per_task.get(task, self.max_dev)

    def model_steps_for(self, task: str) -> int:
        return self.model_steps.get(task, self.steps_for(task))

    def to_dict(self) -> dict:
        return asdict(self)


def load_report_settings(path: str | Path | None = None, base: ReportSettings | None = None) -> ReportSettings:
    """ReportSettings from the defaults, overridden by a JSON settings file (a committed file
    such as reports/report_settings.json; unknown keys are an error naming them). Nothing else
    is read: no file outside the ones named here can change a report."""
    base = base or ReportSettings()
    if path is None:
        return base
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SoftPromptError(f"{path}: cannot read report settings ({err})") from None
    known = {f.name for f in fields(ReportSettings)}
    unknown = set(raw) - known
    if unknown:
        raise SoftPromptError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
    return replace(base, **raw)


# ---------------------------------------------------------------- results file
def load_results(path: str | Path) -> dict:
    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text())
    return {"tasks": {}}


def save_record(path: str | Path, task: str, method: str, record: dict, meta: dict | None = None) -> None:
    """Read-modify-write one (task, method) record into the results JSON (atomically)."""
    path = Path(path)
    data = load_results(path)
    if meta:
        data.setdefault("meta", {}).update(meta)
    data.setdefault("tasks", {}).setdefault(task, {})[method] = record
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2)))


def _machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count()}


# ---------------------------------------------------------------- one task
def run_task(
    lm: PromptedLM | None,
    task: Task,
    settings: ReportSettings,
    methods: Sequence[str] = METHODS,
    results_path: str | Path = "reports/results.json",
    runs_dir: str | Path = "runs/report",
    command: str = "",
    seeds: Sequence[int] | None = None,
    log=print,
    show_progress: bool = False,
) -> dict:
    """Run the requested methods on one task; each record is saved as soon as it exists
    (`lm` may be None when the only method is 'majority'). show_progress: the progress of
    every training run and evaluation (a bar, or plain lines in a log)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SoftPromptError(f"unknown method(s) {', '.join(unknown)}; methods: {', '.join(METHODS)}")
    name = task.name
    max_tokens = settings.max_input_tokens_for(name)
    if lm is None and set(methods) - {"majority"}:
        raise SoftPromptError("a model is needed for methods other than 'majority'")
    frozen = cast(PromptedLM, lm)  # None only when the sole method is 'majority', which needs no model
    train = task.load(settings.train_split_for(name))
    dev = task.load("dev")[: settings.max_dev_for(name)]
    n_dev_total = len(task.load("dev"))
    meta = {"model": settings.model, "settings": settings.to_dict(), "machine": _machine()}
    if lm is not None:  # for the scale figure: models ordered by size
        meta["parameters"] = sum(p.numel() for p in lm.model.parameters())
    common = {"command": command, "dev_examples": len(dev), "dev_total": n_dev_total, "max_input_tokens": max_tokens,
              "train_examples": len(train), "train_split": settings.train_split_for(name),
              "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    out: dict[str, dict] = {}
    seeds = list(seeds) if seeds is not None else list(range(settings.seeds))
    runs = Path(runs_dir) / name

    if "majority" in methods and task.label_words:
        label, metrics = majority_baseline(task, train, dev)
        out["majority"] = {**common, "method": "majority", "label": label, "steps": 0, "metrics": metrics,
                           "primary": metrics[task.primary_metric]}
        save_record(results_path, name, "majority", out["majority"], meta)

    if "design" in methods:
        log(f"[{name}] prompt design, zero-shot, {len(dev)} dev examples")
        with ProgressReporter(f"{name} prompt design", len(dev), unit="examples", enabled=show_progress) as reporter:
            res = evaluate_prompt_design(frozen, task, dev, shots=0, batch_size=settings.eval_batch_size,
                                         max_input_tokens=max_tokens, progress=reporter.advance)
        out["design"] = {**common, "method": "design", "shots": 0, "steps": 0, "metrics": res.metrics,
                         "primary": res.metrics[task.primary_metric], "eval_seconds": res.seconds,
                         "wall_seconds": res.seconds, "example_input": res.extra["example_input"]}
        save_record(results_path, name, "design", out["design"], meta)

    if "defaults" in methods:
        log(f"[{name}] prompt tuning with the library's defaults for this model and device")
        start = time.perf_counter()
        result = train_prompt(frozen, task, runs / "defaults", PromptConfig(init=cast(Any, settings.init_for(task))),
                              TrainConfig(max_input_tokens=max_tokens, eval_batch_size=settings.eval_batch_size),
                              train, dev, show_progress=show_progress)
        record = defaults_record(result.run_dir, task.primary_metric)
        out["defaults"] = {**common, **record, "wall_seconds": time.perf_counter() - start}
        save_record(results_path, name, "defaults", out["defaults"], meta)

    if "prompt" in methods:
        steps = settings.steps_for(name)
        for seed in seeds:
            log(f"[{name}] prompt tuning, seed {seed}, {steps} steps")
            config = TrainConfig(optimizer=cast(Any, settings.optimizer), learning_rate=settings.learning_rate,
                                 batch_size=settings.batch_size, max_steps=steps, eval_every=steps,
                                 max_input_tokens=max_tokens, seed=seed,
                                 log_every=max(1, steps // 10), eval_batch_size=settings.eval_batch_size)
            init = settings.init_for(task)
            pconfig = PromptConfig(length=settings.prompt_length, init=cast(Any, init))
            soft = SoftPrompt.initialise(frozen, pconfig, task.label_words, seed=seed)
            start = time.perf_counter()
            result = Trainer(frozen, soft, task, train, None, config, runs / f"prompt-seed{seed}",
                             init_name=init, show_progress=show_progress).train()
            seconds = time.perf_counter() - start
            losses = [json.loads(ln) for ln in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
            losses = [(r["step"], round(r["loss"], 4)) for r in losses if r.get("event") == "train"]
            record = {**common, "method": "prompt", "seed": seed, "init": init, "steps": steps,
                      "batch_size": settings.batch_size,
                      "examples_seen": steps * settings.batch_size, "train_seconds": seconds,
                      "prompt_path": str(result.prompt_path), "losses": losses}
            out[f"prompt-seed{seed}"] = record
            save_record(results_path, name, f"prompt-seed{seed}", record, meta)

    if "ensemble" in methods:
        data = load_results(results_path)["tasks"].get(name, {})
        runs_found = [data[f"prompt-seed{s}"] for s in sorted(
            int(k.split("seed")[1]) for k in data if k.startswith("prompt-seed"))]
        if not runs_found:
            raise SoftPromptError(f"[{name}] no prompt-tuning runs recorded in {results_path}: run method 'prompt' first")
        prompts = [load_prompt(r["prompt_path"], frozen).tensor for r in runs_found]
        log(f"[{name}] scoring {len(prompts)} prompts together on {len(dev)} dev examples")
        ens = evaluate_ensemble(frozen, task, dev, prompts, batch_size=max(1, settings.eval_batch_size // len(prompts)),
                                names=[r["prompt_path"] for r in runs_found], max_input_tokens=max_tokens)
        record = {**common, "method": "ensemble", "seeds": [r["seed"] for r in runs_found],
                  "steps": runs_found[0]["steps"], "eval_seconds": ens.seconds,
                  "train_seconds": sum(r["train_seconds"] for r in runs_found), **ens.to_dict(),
                  "primary": ens.ensemble[task.primary_metric]}
        out["ensemble"] = record
        save_record(results_path, name, "ensemble", record, meta)

    if "model" in methods:
        steps = settings.model_steps_for(name)
        log(f"[{name}] model tuning, {steps} steps")
        tuning = ModelTuningConfig(optimizer=cast(Any, settings.model_optimizer),
                                   learning_rate=settings.model_learning_rate,
                                   batch_size=settings.batch_size, max_steps=steps, max_input_tokens=max_tokens,
                                   eval_batch_size=settings.eval_batch_size, log_every=max(1, steps // 10),
                                   length_bands=settings.model_length_bands)
        tuned = tune_model(frozen, task, train, dev, tuning, run_dir=runs / "model", show_progress=show_progress)
        if tuned.final_metrics is None:
            raise SoftPromptError(f"[{name}] model tuning needs dev examples to report a score")
        record = {**common, "method": "model", "steps": steps, "batch_size": settings.batch_size,
                  "examples_seen": steps * settings.batch_size, "metrics": tuned.final_metrics,
                  "primary": tuned.final_metrics[task.primary_metric], "train_seconds": tuned.train_seconds,
                  "eval_seconds": tuned.eval_seconds, "wall_seconds": tuned.seconds, "losses": tuned.losses,
                  "optimizer": settings.model_optimizer, "learning_rate": settings.model_learning_rate,
                  "length_bands": tuned.config["length_bands"], "trainable_parameters": tuned.trainable_parameters}
        out["model"] = record
        save_record(results_path, name, "model", record, meta)
    return out


def defaults_record(run_dir: str | Path, primary_metric: str) -> dict:
    """The 'defaults' record of a finished training run folder (result.json, metrics.jsonl)."""
    run_dir = Path(run_dir)
    result = json.loads((run_dir / "result.json").read_text())
    log = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    metrics = result.get("final_metrics") or result.get("best_metrics") or {}
    run = result.get("run") or {}
    return {
        "method": "defaults", "steps": result["steps"], "best_step": result["best_step"],
        "metrics": metrics, "primary": metrics.get(primary_metric),
        "initial_metrics": result["initial_metrics"], "settings": result.get("settings"),
        "warnings": result.get("warnings"), "train_seconds": result["seconds"],
        "wall_seconds": result["seconds"] + run.get("model_load_seconds", 0.0),
        "losses": [(r["step"], round(r["loss"], 4)) for r in log if r.get("event") == "train"],
        "evals": [(r["step"], r["metrics"].get(primary_metric), r["examples"]) for r in log if r.get("event") == "eval"],
        "prompt_path": result["prompt_path"], **({"command": run["command"]} if run.get("command") else {}),
    }


def import_run(results_path: str | Path, task: Task, run_dir: str | Path, model: str,
               train_split: str = "train") -> dict:
    """Record a finished `softprompt train` run (with the library's defaults) as a task's
    'defaults' result, so the report's prompt-tuning figure is that exact command's."""
    record = defaults_record(run_dir, task.primary_metric)
    dev = task.load("dev")
    record.update(dev_examples=len(dev), dev_total=len(dev), train_split=train_split,
                  train_examples=len(task.load(train_split)),
                  date=time.strftime("%Y-%m-%d %H:%M:%S"), run_dir=str(run_dir))
    save_record(results_path, task.name, "defaults", record, {"model": model, "machine": _machine()})
    return record


# ---------------------------------------------------------------- the Markdown report
def _fmt(metrics: dict | None, names: Sequence[str]) -> str:
    if not metrics:
        return "-"
    return "/".join(f"{metrics[n]:.1f}" for n in names if n in metrics)


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


REPORT_METRICS: dict[str, tuple[str, ...]] = {"cb": ("accuracy", "macro_f1"), "mrpc": ("accuracy", "f1")}


def build_report(results: dict, data_note: str = "", lr_checks: Sequence[dict] = (), notes: str = "") -> str:
    """results.json -> Markdown: the summary table, settings, the hand-written prompts, the
    model-tuning learning-rate check (`lr_checks`: model-tune --json outputs), `notes`
    (free text placed after the table) and each run's command and details."""
    meta = results.get("meta", {})
    settings = meta.get("settings", {})
    tasks = [t for t in REPORT_TASKS if t in results.get("tasks", {})] + sorted(
        t for t in results.get("tasks", {}) if t not in REPORT_TASKS)
    lines = [
        f"# Prompt design vs prompt tuning vs model tuning on {meta.get('model', '?')}",
        "",
        "Generated by `python -m softprompt.cli.experiments report-build` from `reports/results.json` "
        "(do not edit by hand). Every number is a dev-set number on the dev examples stated, from one "
        "run on a shared 2-core CPU; the step budgets are tiny (minutes per run), so these numbers show "
        "what each method reaches at a CPU budget, not converged performance.",
        "",
        "**Not comparable with the paper's figures**: Lester et al. (2021) report T5 models of 60M-11B "
        "parameters trained for 30,000 steps with batch 32 (prompt tuning) on full dev sets; this is "
        "SmolLM2-135M (a 135M decoder-only model) trained for a few hundred examples.",
        "",
        "Metrics: accuracy, except CB (accuracy/macro-F1) and MRPC (accuracy/F1 of 'equivalent'). "
        "Majority class: every dev example gets the most frequent train label (no model). "
        "Prompt ensemble `avg · best · ens` = the mean over the seeds' prompts, the best single prompt, and "
        "their majority-vote ensemble (ties broken by the summed log-likelihood), as in the paper's Table 3; "
        "the prompt-tuning column is the seed-0 prompt of the same ensemble. Steps are optimizer updates; "
        "wall time is CPU time inside the shared lock (PT: per seed, training only).",
        "",
        "| task | dev examples | majority class | prompt design (0-shot) | prompt tuning (seed 0) | prompt ensemble avg · best · ens | model tuning | steps PT / MT (batch) | wall time design / PT / ensemble eval / MT |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in tasks:
        rec = results["tasks"][t]
        names = REPORT_METRICS.get(t, ("accuracy",))
        design = rec.get("design")
        ens = rec.get("ensemble")
        model = rec.get("model")
        pt0 = ens["per_prompt"][0] if ens else None
        dev: dict = next((r for r in (design, ens, model) if r), {})
        dev_note = f"{dev.get('dev_examples', '?')} of {dev.get('dev_total', '?')}"
        ens_cell = "-"
        if ens:
            ens_cell = f"{_fmt(ens['average'], names)} · {_fmt(ens['best'], names)} · **{_fmt(ens['ensemble'], names)}**"
        pt_runs = [v for k, v in rec.items() if k.startswith("prompt-seed")]
        pt_steps = pt_runs[0]["steps"] if pt_runs else None
        bs = pt_runs[0]["batch_size"] if pt_runs else (model or {}).get("batch_size")
        steps_cell = f"{pt_steps or '-'} / {(model or {}).get('steps', '-')} ({bs or '-'})"
        pt_time = sum(r["train_seconds"] for r in pt_runs) / len(pt_runs) if pt_runs else None
        time_cell = " / ".join([
            _minutes((design or {}).get("wall_seconds")), _minutes(pt_time),
            _minutes((ens or {}).get("eval_seconds")), _minutes((model or {}).get("wall_seconds")),
        ])
        majority = rec.get("majority")
        lines.append(f"| {t} | {dev_note} | {_fmt(majority and majority['metrics'], names)} | "
                     f"{_fmt(design and design['metrics'], names)} | {_fmt(pt0, names)} | "
                     f"{ens_cell} | {_fmt(model and model['metrics'], names)} | {steps_cell} | {time_cell} |")

    if notes:
        lines += ["", notes.strip()]
    lines += ["", "## Settings", ""]
    if settings:
        lines += [
            f"- Model: `{meta.get('model')}` (frozen for prompt design, prompt tuning and ensembles).",
            f"- Prompt tuning: p = {settings.get('prompt_length')}, init {settings.get('init')}, "
            f"{settings.get('optimizer')} lr {settings.get('learning_rate')} constant, batch {settings.get('batch_size')}, "
            f"{settings.get('seeds')} seeds (0..{settings.get('seeds', 1) - 1}); the prompt after the last step is "
            "scored (no checkpoint selection on dev). Settings source: "
            f"{settings.get('hparams_source')}.",
            f"- Model tuning: every weight of a copy of the model, {settings.get('model_optimizer')} lr "
            f"{settings.get('model_learning_rate')} constant, no weight decay, gradient norm clipped at 1.0, same "
            "batch size and example order as the seed-0 prompt, the same text-to-text loss; scored after the last step.",
            "- Prompt design: the hand-written template of `softprompt.experiments.prompt_design` "
            "(instruction + natural-language body + answer words), zero-shot, no training.",
            f"- All methods: rank classification over the task's options; inputs keep their last "
            f"{settings.get('max_input_tokens')} tokens"
            + "".join(f", {t}: {n}" for t, n in sorted(settings.get("max_input_tokens_per_task", {}).items()))
            + "; the first N dev examples of each task's dev file (N in the table's dev column).",
        ]
        for note in settings.get("notes", []):
            lines.append(f"- Note from the tuning settings: {note}")
    machine = meta.get("machine")
    if machine:
        lines.append(f"- Machine: {machine.get('processor')}, {machine.get('threads')} torch threads, torch {machine.get('torch')}.")
    if data_note:
        lines += ["", data_note]

    if lr_checks:
        lines += ["", "## Model-tuning learning rate", "",
                  "Checked once before the runs above, with `experiment model-tune` (commands below), on SST-2 only:", "",
                  "| learning rate | optimizer | steps (batch) | dev examples | accuracy | train time |", "|---|---|---|---|---|---|"]
        for c in sorted(lr_checks, key=lambda c: c["config"]["learning_rate"]):
            cfg = c["config"]
            lines.append(f"| {cfg['learning_rate']:g} | {cfg['optimizer']} | {cfg['max_steps']} ({cfg['batch_size']}) | "
                         f"{c['dev_examples']} | {_fmt(c['final_metrics'], ('accuracy',))} | {_minutes(c['train_seconds'])} |")
        lines += [""] + [f"    {reproducing_command(c)}" for c in sorted(lr_checks, key=lambda c: c["config"]["learning_rate"])]
        lines += ["", f"The spread is within noise (one standard error is about 2.7 points on 200 examples); the runs "
                  f"above use {settings.get('model_learning_rate', '?'):g}, the middle of the range and the module's default."]

    from softprompt.experiments.prompt_design import TEMPLATES, describe_templates

    design_tasks = [t for t in tasks if t in TEMPLATES]
    lines += ["", "## Hand-written prompts (prompt design)", "",
              "Zero-shot input = instruction, a blank line, then the body filled with the example's fields; the "
              "model scores each answer word after it (`softprompt experiment templates` prints all tasks).", ""]
    lines += [ln for ln in describe_templates().splitlines()
              if not ln.startswith("| ") or ln.startswith("| task") or any(ln.startswith(f"| {t} |") for t in design_tasks)]

    lines += ["", "## Commands and runs", "",
              "Each run was wrapped in the shared CPU lock: `flock /tmp/softprompt-cpu.lock <command>`.", ""]
    for t in tasks:
        rec = results["tasks"][t]
        commands = list(dict.fromkeys(reproducing_command(r) for r in rec.values() if r.get("command")))
        lines.append(f"### {t}")
        lines.append("")
        lines += [f"    {command}" for command in commands]
        lines.append("")
        for key in sorted(rec):
            r = rec[key]
            if key.startswith("prompt-seed"):
                loss = r["losses"][-1][1] if r.get("losses") else None
                lines.append(f"- {key}: {r['steps']} steps x batch {r['batch_size']} ({r['examples_seen']} examples seen "
                             f"of {r['train_examples']} train), {_minutes(r['train_seconds'])}, last train loss {loss}")
            elif key == "model":
                loss = r["losses"][-1][1] if r.get("losses") else None
                lines.append(f"- model tuning: {r['steps']} steps x batch {r['batch_size']} ({r['examples_seen']} examples seen), "
                             f"{r['trainable_parameters']:,} weights, train {_minutes(r['train_seconds'])} + eval "
                             f"{_minutes(r['eval_seconds'])}, last train loss {loss if loss is None else round(loss, 4)}")
            elif key == "majority":
                lines.append(f"- majority class: '{r['label']}' for every dev example")
            elif key == "design":
                lines.append(f"- prompt design: {_minutes(r['wall_seconds'])} on {r['dev_examples']} dev examples")
            elif key == "ensemble":
                per = ", ".join(f"{m[r['primary_metric']]:.1f}" for m in r["per_prompt"])
                lines.append(f"- ensemble: seeds {r['seeds']} scored in shared batches in {_minutes(r['eval_seconds'])}; "
                             f"per-seed {r['primary_metric']}: {per}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    results_path: str | Path = "reports/results.json",
    out: str | Path = "reports/results.md",
    lr_check_dir: str | Path | None = "reports/model_lr_check",
    notes_path: str | Path | None = "reports/notes.md",
) -> Path:
    """Regenerate the Markdown report from the results JSON (plus the learning-rate check's JSON
    files and a free-text notes file, where present)."""
    results = load_results(results_path)
    if not results.get("tasks"):
        raise SoftPromptError(f"{results_path}: no results yet (run report-run first)")
    checks = []
    if lr_check_dir is not None and Path(lr_check_dir).is_dir():
        checks = [json.loads(p.read_text()) for p in sorted(Path(lr_check_dir).glob("*.json"))]
    notes = Path(notes_path).read_text() if notes_path is not None and Path(notes_path).is_file() else ""
    Path(out).write_text(build_report(results, lr_checks=checks, notes=notes))
    return Path(out)


# ---------------------------------------------------------------- the per-model summary (prompt tuning with defaults)
TARGET_TASKS: tuple[str, ...] = ("sst2", "rte", "cb", "mrpc", "wic", "copa", "wsc", "boolq")
TARGET_MARGIN = 5.0  # prompt tuning must beat the majority class and zero-shot design by this many points


def _primary(record: dict | None) -> float | None:
    if not record:
        return None
    value = record.get("primary")
    return None if value is None else float(value)


def summary_rows(results: dict) -> list[dict]:
    """One row per task of a model's results: baselines, prompt tuning with the defaults, the
    margin of prompt tuning over the better baseline, and model tuning."""
    rows = []
    tasks = [t for t in TARGET_TASKS if t in results.get("tasks", {})] + sorted(
        t for t in results.get("tasks", {}) if t not in TARGET_TASKS)
    for t in tasks:
        rec = results["tasks"][t]
        majority, design, tuned, model = (rec.get(k) for k in ("majority", "design", "defaults", "model"))
        baselines = [v for v in (_primary(majority), _primary(design)) if v is not None]
        pt = _primary(tuned)
        margin = pt - max(baselines) if pt is not None and baselines else None
        rows.append({"task": t, "majority": majority, "design": design, "defaults": tuned, "model": model,
                     "margin": margin})
    return rows


def build_summary(results_by_model: dict[str, dict]) -> str:
    """The report's first part: per model, the baselines against prompt tuning with the
    library's defaults (no flags beyond task and model), each number from a record."""
    lines = [
        "# Prompt tuning on the shipped models: baselines, prompt tuning with the defaults, model tuning",
        "",
        "Generated by `python -m softprompt.cli.experiments report-build` from the results files named "
        "below (do not edit by hand). Prompt tuning = `softprompt train --task T --model M` with no "
        "other setting: the library's defaults for the model and device (lr from the embedding scale, "
        "the CPU budget; see each run's settings below), the task's decoder-only format, the best prompt "
        "on the dev subset scored on the whole dev set. Majority class: the most frequent train label for "
        "every dev example. Prompt design: the hand-written zero-shot prompt. Margin = prompt tuning minus "
        f"the better of the two baselines (primary metric); the target is at least {TARGET_MARGIN:g} points. "
        "PT batches: 'random' draws them uniformly (the default, the paper's), 'by length' groups rows of "
        "similar length (`--group-by-length`: less padding; the command below adds the flag). Runs recorded "
        "before length bands (the CPU default since: the same gradient, less padding computed) computed each "
        "batch in one padded pass; their commands add `--no-length-bands` (model tuning: "
        "`--no-model-length-bands`), as they ran.",
        "",
    ]
    for model, results in results_by_model.items():
        rows = summary_rows(results)
        lines += [f"## {model}", "",
                  "| task | dev examples | train examples (split) | majority class | prompt design (0-shot) | "
                  "prompt tuning (defaults) | margin | model tuning | PT updates (batch, batches), lr | PT wall time |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in rows:
            names = REPORT_METRICS.get(row["task"], ("accuracy",))
            any_rec: dict = next((r for r in (row["defaults"], row["design"], row["majority"], row["model"]) if r), {})
            tuned = row["defaults"] or {}
            train = (tuned.get("settings") or {}).get("train", {})
            grouped = train.get("group_by_length", PRE_SETTING_VALUES["group_by_length"])
            batching = "by length" if grouped else "random"
            steps = (f"{tuned.get('steps', '-')} ({train.get('batch_size', '-')}, {batching}), "
                     f"{train.get('learning_rate', '-')}" if tuned else "-")
            margin = row["margin"]
            margin_cell = "-" if margin is None else f"{margin:+.1f}" + (" ✓" if margin >= TARGET_MARGIN else " ✗")
            lines.append(
                f"| {row['task']} | {any_rec.get('dev_examples', '-')} of {any_rec.get('dev_total', '-')} | "
                f"{any_rec.get('train_examples', '-')} ({any_rec.get('train_split', 'train')}) | "
                f"{_fmt(row['majority'] and row['majority']['metrics'], names)} | "
                f"{_fmt(row['design'] and row['design']['metrics'], names)} | "
                f"{_fmt(tuned.get('metrics'), names)} | {margin_cell} | "
                f"{_fmt(row['model'] and row['model']['metrics'], names)} | {steps} | "
                f"{_minutes(tuned.get('wall_seconds'))} |")
        machine = results.get("meta", {}).get("machine")
        if machine:
            lines += ["", f"Machine: {machine.get('processor')}, {machine.get('cpus')} CPUs, "
                      f"{machine.get('threads')} torch threads, torch {machine.get('torch')}."]
        warned = [(row["task"], w) for row in rows for w in ((row["defaults"] or {}).get("warnings") or [])]
        for task, warning in warned:
            lines.append(f"- {task}: {warning}")
        lines += ["", "Commands:", ""]
        for row in rows:
            commands = dict.fromkeys(reproducing_command(r) for r in (row["majority"], row["design"], row["defaults"],
                                                                       row["model"]) if r and r.get("command"))
            lines += [f"    {c}" for c in commands]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def summary_figure(results_by_model: dict[str, dict], out: Path) -> Path:
    """Per model, the primary metric of majority class, zero-shot design and prompt tuning per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results_by_model), 1, figsize=(10, 3.4 * len(results_by_model)), squeeze=False)
    methods = (("majority", "majority class"), ("design", "prompt design (0-shot)"), ("defaults", "prompt tuning"))
    for ax, (model, results) in zip(axes[:, 0], results_by_model.items()):
        rows = summary_rows(results)
        for k, (key, label) in enumerate(methods):
            measured = [(i, _primary(row[key])) for i, row in enumerate(rows) if _primary(row[key]) is not None]
            ax.bar([i + (k - 1) * 0.27 for i, _ in measured], [y for _, y in measured], width=0.27, label=label,
                   color=f"C{k}")  # a method not measured on a task has no bar (not a zero)
        ax.set_xticks(range(len(rows)), [row["task"] for row in rows])
        ax.set_xlim(-0.6, max(len(rows), 4) - 0.4)
        ax.set_ylabel("primary metric (dev, %)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{model}: baselines vs prompt tuning with the defaults")
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out


def _sized_models_and_shared_tasks(results_by_model: dict[str, dict]) -> tuple[list[str], list[str]]:
    """The models with a parameter count, smallest first, and the tasks all of them have (none
    when fewer than two models are sized): what the scale figure and table compare."""
    sized = {m: r for m, r in results_by_model.items() if r.get("meta", {}).get("parameters")}
    if len(sized) < 2:
        return [], []
    order = sorted(sized, key=lambda m: sized[m]["meta"]["parameters"])
    return order, sorted(set.intersection(*(set(r.get("tasks", {})) for r in sized.values())))


def scale_points(results_by_model: dict[str, dict], task: str, method: str) -> list[tuple[float, float]]:
    """(millions of parameters, primary metric) of `method` on `task` for each model that recorded it,
    smallest model first: a method measured on one model only is still drawn, as a lone point."""
    points = [(r["meta"]["parameters"] / 1e6, _primary(r["tasks"].get(task, {}).get(method)))
              for r in results_by_model.values() if r.get("meta", {}).get("parameters")]
    return sorted((size, value) for size, value in points if value is not None)


def scale_figure(results_by_model: dict[str, dict], out: Path) -> Path | None:
    """The paper's Figure 1 at two sizes: per task measured on every model, zero-shot design and
    prompt tuning (and model tuning where recorded) against the number of parameters. None when
    fewer than two models have a parameter count and a shared task."""
    order, shared = _sized_models_and_shared_tasks(results_by_model)
    if not shared:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sized = {m: results_by_model[m] for m in order}
    sizes = [sized[m]["meta"]["parameters"] / 1e6 for m in order]
    # one small panel per task (a single axis with every task's lines is unreadable), same y range
    cols = min(4, len(shared))
    rows = -(-len(shared) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.4 * rows + 0.8), sharey=True, squeeze=False)
    methods = (("design", ":", "C0", "prompt design (0-shot)"), ("defaults", "-", "C3", "prompt tuning"),
               ("model", "--", "C2", "model tuning"))
    for ax, task in zip(axes.flat, shared):
        for key, style, color, label in methods:
            points = scale_points(sized, task, key)
            if points:
                ax.plot(*zip(*points), style, marker="o", color=color, label=label)
        ax.set_title(task, fontsize=10)
        ax.set_xticks(sizes, [f"{s:.0f}M" for s in sizes], fontsize=8)
        ax.margins(x=0.25)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(shared):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("dev, primary metric (%)", fontsize=8)
    handles = [plt.Line2D([], [], linestyle=cast(Any, style), marker="o", color=color, label=label)
               for _, style, color, label in methods]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("scale: " + " vs ".join(f"{m} ({s:.0f}M parameters)" for m, s in zip(order, sizes)), fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out


def scale_section(results_by_model: dict[str, dict]) -> str:
    """The paper's Figure 1 as a table: per task measured on two or more models (smallest first),
    zero-shot design, prompt tuning with the defaults, model tuning, and the gap model tuning minus
    prompt tuning; '' when no task is shared."""
    order, shared = _sized_models_and_shared_tasks(results_by_model)
    if not shared:
        return ""
    sized = {m: results_by_model[m] for m in order}
    lines = ["## Scale (the paper's Figure 1 at two sizes)", "",
             "Primary metric on the dev examples of the table above; gap = model tuning minus prompt tuning "
             "(the paper: it shrinks as models grow). Model tuning: every weight, AdamW, the updates, batch and "
             "learning rate in its record.", "",
             "| task | model | parameters | prompt design | prompt tuning | model tuning (updates, lr) | gap |",
             "|---|---|---|---|---|---|---|"]
    for task in shared:
        for m in order:
            rec = sized[m]["tasks"][task]
            design, tuned, model = (_primary(rec.get(k)) for k in ("design", "defaults", "model"))
            cell = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
            gap = "-" if model is None or tuned is None else f"{model - tuned:+.1f}"
            steps = f" ({rec['model'].get('steps')}, {rec['model'].get('learning_rate'):g})" if rec.get("model") else ""
            lines.append(f"| {task} | {m} | {sized[m]['meta']['parameters'] / 1e6:.0f}M | {cell(design)} | "
                         f"{cell(tuned)} | {cell(model)}{steps} | {gap} |")
    return "\n".join(lines) + "\n"


def write_summary(results_paths: Sequence[str | Path], out: str | Path = "reports/results.md",
                  ablation_dir: str | Path | None = None, ensemble_dir: str | Path | None = None,
                  transfer_dir: str | Path | None = None, variant_dir: str | Path | None = None,
                  lr_check_dir: str | Path | None = None) -> Path:
    """The per-model summary report from one results file per model (each file's meta names its model),
    with its figures (reports/figures/results_summary.png, and results_scale.png once two models share a task),
    then runs with a setting changed (variant_dir/<model>/<task>/<name>/result.json) and the studies whose
    records exist (model tuning's lr check under the scale table, the length x init ablation, ensembles,
    transfer)."""
    from softprompt.experiments.ablation import ablation_figure, ablation_section, figure_name, load_records
    from softprompt.experiments.study_figures import ensemble_figure, transfer_figure
    from softprompt.experiments.study_sections import (
        ensemble_section,
        load_json_records,
        load_variant_runs,
        model_lr_section,
        transfer_section,
        variant_section,
    )

    by_model: dict[str, dict] = {}
    for path in results_paths:
        results = load_results(path)
        if not results.get("tasks"):
            raise SoftPromptError(f"{path}: no results yet (run report-run first)")
        by_model[results.get("meta", {}).get("model", str(path))] = results
    text = build_summary(by_model)
    figures = Path(out).parent / "figures"
    text += "\n![baselines vs prompt tuning](figures/results_summary.png)\n"
    summary_figure(by_model, figures / "results_summary.png")
    if scale_figure(by_model, figures / "results_scale.png") is not None:
        text += "\n" + scale_section(by_model) + "\n![scale](figures/results_scale.png)\n"
    lr_checks = load_json_records(lr_check_dir)
    if lr_checks:
        used = {(m, task): rec["model"]["learning_rate"] for m, r in by_model.items()
                for task, rec in r.get("tasks", {}).items() if rec.get("model")}
        text += "\n" + model_lr_section(lr_checks, used)
    text += "\nResults files: " + ", ".join(f"`{p}`" for p in results_paths) + ".\n"
    variants = load_variant_runs(variant_dir)
    if variants:
        text += "\n" + variant_section(variants, by_model, REPORT_METRICS)
    ablations = [r for r in load_records(ablation_dir) if r.get("cells")] if ablation_dir else []
    if ablations:
        for record in ablations:
            meta = record["meta"]
            majority = by_model.get(meta["model"], {}).get("tasks", {}).get(meta["task"], {}).get("majority")
            ablation_figure(record, figures / figure_name(record), _primary(majority))
        text += "\n" + ablation_section(ablations)
    ensembles = load_json_records(ensemble_dir)
    if ensembles:
        ensemble_figure(ensembles, figures / "ensembles.png")
        text += "\n" + ensemble_section(ensembles) + "\n![prompt ensembles](figures/ensembles.png)\n"
    transfers = load_json_records(transfer_dir)
    if transfers:
        transfer_figure(transfers, figures / "transfer.png")
        text += "\n" + transfer_section(transfers) + "\n![domain transfer](figures/transfer.png)\n"
    atomic_write(Path(out), lambda tmp: Path(tmp).write_text(text))
    return Path(out)

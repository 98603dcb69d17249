"""Prompt length x initialisation (the paper's Figure 3), sized for a CPU.

    python -m softprompt.cli.experiments ablate --task sst2 --model smollm2 \\
        -p 1 -p 5 -p 20 -p 100 --init random-uniform --init sampled-vocab --init class-label --seed 0 \\
        --steps 150 --max-dev 300

One run per (prompt length, init, seed): the library's defaults for the model and device (optimizer,
lr rule, batch) except the length and the init, a fixed number of updates, and no dev evaluation
during training, so nothing is selected on dev: the prompt after the last update is scored on the
first `max_dev` dev examples, and so is the prompt before training (what the init alone gives).

Each cell is written to the record (reports/ablation/<model>-<task>.json) atomically the moment it
ends, and a cell's run folder keeps its checkpoint: a killed grid, rerun with the same command,
skips the finished cells and resumes the one it was in.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import mean
from typing import Any, Callable, Sequence, cast

import torch

from softprompt.core.config import ConfigError, PromptConfig, TrainConfig
from softprompt.core.model import PromptedLM
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import load_prompt
from softprompt.errors import SoftPromptError
from softprompt.evaluation.evaluator import evaluate
from softprompt.fileio import atomic_write
from softprompt.tasks.base import Task
from softprompt.training.run import train_prompt

# the paper's three inits (text and file inits need an argument the grid has no axis for)
ABLATION_INITS: tuple[str, ...] = ("random-uniform", "sampled-vocab", "class-label")


@dataclass(frozen=True)
class AblationSettings:
    """The grid and the budget of one (model, task) ablation."""

    lengths: tuple[int, ...] = (1, 5, 20, 100)
    inits: tuple[str, ...] = ("random-uniform", "sampled-vocab", "class-label")
    seeds: tuple[int, ...] = (0,)
    steps: int = 150
    max_dev: int = 300
    max_input_tokens: int = 256
    eval_batch_size: int = 32

    def __post_init__(self) -> None:
        for name in ("lengths", "inits", "seeds"):
            if not getattr(self, name):
                raise ConfigError(f"{name}: must name at least one value")
        if any(not isinstance(p, int) or p < 1 for p in self.lengths):
            raise ConfigError(f"lengths: must be positive integers, got {list(self.lengths)}")
        unknown = [i for i in self.inits if i not in ABLATION_INITS]
        if unknown:
            raise ConfigError(f"inits: unknown init(s) {', '.join(unknown)}; choose from {', '.join(ABLATION_INITS)}")
        for name in ("steps", "max_dev", "max_input_tokens", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be a positive integer, got {value!r}")


def cell_key(length: int, init: str, seed: int) -> str:
    return f"p{length}-{init}-seed{seed}"


def record_path(out_dir: str | Path, model: str, task: str) -> Path:
    return Path(out_dir) / f"{model}-{task}.json"


def load_record(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        return {"meta": {}, "cells": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SoftPromptError(f"{path}: not a valid ablation record ({err})") from None


def _save(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2) + "\n"))


def run_ablation(
    lm: PromptedLM,
    task: Task,
    model_name: str,
    settings: AblationSettings,
    out_dir: str | Path = "reports/ablation",
    runs_dir: str | Path = "runs/ablation",
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict:
    """Run every cell of the grid not yet in the record; returns the record."""
    path = record_path(out_dir, model_name, task.name)
    record = load_record(path)
    old = record.get("meta", {}).get("settings")
    budget = {k: v for k, v in asdict(settings).items() if k in ("steps", "max_dev", "max_input_tokens")}
    if old and any(old.get(k) != v for k, v in budget.items()):
        raise SoftPromptError(f"{path}: recorded with {({k: old.get(k) for k in budget})}, now {budget}: "
                              "cells of different budgets would share one figure; use another --out")
    train = task.load("train")
    dev_all = task.load("dev")
    dev = dev_all[: settings.max_dev]
    commands = list(dict.fromkeys([*record.get("meta", {}).get("commands", []), *([command] if command else [])]))
    record["meta"] = {
        "model": model_name, "task": task.name, "primary_metric": task.primary_metric,
        # the budget every cell shares; the grid's lengths, inits and seeds are read from the cells
        "settings": budget,
        "dev_examples": len(dev), "dev_total": len(dev_all), "train_examples": len(train),
        "parameters": sum(p.numel() for p in lm.model.parameters()),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "commands": commands,
    }
    cells: dict[str, dict] = record.setdefault("cells", {})
    for seed in settings.seeds:
        for init in settings.inits:
            for length in settings.lengths:
                key = cell_key(length, init, seed)
                if key in cells:
                    continue
                log(f"[{task.name} {model_name}] {key}: {settings.steps} updates")
                cells[key] = run_cell(lm, task, train, dev, length, init, seed, settings,
                                      Path(runs_dir) / model_name / task.name / key)
                _save(path, record)
                log(f"[{task.name} {model_name}] {key}: {cells[key]['primary_initial']:.1f} -> "
                    f"{cells[key]['primary']:.1f} ({cells[key]['train_seconds']:.0f} s)")
    _save(path, record)
    return record


def run_cell(lm: PromptedLM, task: Task, train: Sequence, dev: Sequence, length: int, init: str, seed: int,
             settings: AblationSettings, run_dir: Path) -> dict:
    """Train one prompt (no dev during training), then score it and its initial value on `dev`."""
    resume = (run_dir / "checkpoint.pt").is_file() and not (run_dir / "result.json").is_file()
    config = TrainConfig(max_steps=settings.steps, eval_every=settings.steps, seed=seed,
                         max_input_tokens=settings.max_input_tokens, eval_batch_size=settings.eval_batch_size,
                         log_every=max(1, settings.steps // 10))
    start = time.perf_counter()
    result = train_prompt(lm, task, run_dir, PromptConfig(length=length, init=cast(Any, init)), config, train, None,
                          resume=resume, show_progress=False)
    train_seconds = time.perf_counter() - start
    resolved = result.settings or {}
    initial = SoftPrompt.initialise(lm, PromptConfig(length=length, init=cast(Any, init)), task.label_words,
                                    seed=seed).weight.detach()
    trained = load_prompt(result.prompt_path, lm).tensor
    before = evaluate(lm, task, dev, initial, settings.eval_batch_size, max_input_tokens=settings.max_input_tokens)
    after = evaluate(lm, task, dev, trained, settings.eval_batch_size, max_input_tokens=settings.max_input_tokens)
    losses = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "length": length, "init": init, "seed": seed, "steps": result.steps,
        "batch_size": resolved.get("train", {}).get("batch_size"),
        "learning_rate": resolved.get("train", {}).get("learning_rate"),
        "length_bands": bool(resolved.get("train", {}).get("length_bands")),
        "metrics_initial": before.metrics, "primary_initial": before.metrics[task.primary_metric],
        "metrics": after.metrics, "primary": after.metrics[task.primary_metric],
        "train_seconds": round(train_seconds, 1), "eval_seconds": round(before.seconds + after.seconds, 1),
        "losses": [[r["step"], round(r["loss"], 4)] for r in losses if r.get("event") == "train"],
        "prompt_path": str(result.prompt_path), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def summarise(record: dict) -> dict[str, dict[int, dict[str, float]]]:
    """init -> length -> {mean, min, max, n} of the primary metric over seeds."""
    out: dict[str, dict[int, list[float]]] = {}
    for cell in record.get("cells", {}).values():
        out.setdefault(cell["init"], {}).setdefault(cell["length"], []).append(cell["primary"])
    return {init: {p: {"mean": mean(v), "min": min(v), "max": max(v), "n": len(v)} for p, v in sorted(by_p.items())}
            for init, by_p in out.items()}


def figure_name(record: dict) -> str:
    return f"ablation_{record['meta']['model']}_{record['meta']['task']}.png"


def min_span_limits(low: float, high: float, min_span: float = 10.0) -> tuple[float, float]:
    """Axis limits spanning at least `min_span` points around (low, high): a grid whose cells all end
    within a point or two of one another should look flat, not fill the axis with noise."""
    if high - low >= min_span:
        return low, high
    middle = (low + high) / 2
    return middle - min_span / 2, middle + min_span / 2


def ablation_figure(record: dict, out: Path, majority: float | None = None) -> Path:
    """Metric vs prompt length (log axis), one line per init: the mean over seeds, the bar spans
    the seeds' min..max; a dotted line per init: the same prompts before training; a grey line at
    `majority` (the majority class's score on the whole dev set, where known) shows what no learning scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = record["meta"]
    stats = summarise(record)
    before: dict[str, dict[int, list[float]]] = {}
    for cell in record["cells"].values():
        before.setdefault(cell["init"], {}).setdefault(cell["length"], []).append(cell["primary_initial"])
    fig, ax = plt.subplots(figsize=(8.4, 4.2))
    for k, init in enumerate(i for i in ABLATION_INITS if i in stats):
        lengths = list(stats[init])
        means = [stats[init][p]["mean"] for p in lengths]
        spread = [[m - stats[init][p]["min"] for p, m in zip(lengths, means)],
                  [stats[init][p]["max"] - m for p, m in zip(lengths, means)]]
        ax.errorbar(lengths, means, yerr=spread, marker="o", capsize=3, color=f"C{k}", label=f"{init} (trained)")
        ax.plot(lengths, [mean(before[init][p]) for p in lengths], ":", marker=".", color=f"C{k}", alpha=0.6,
                label=f"{init} (before training)")
    if majority is not None:
        ax.axhline(majority, color="0.5", linestyle="--", linewidth=1, label="majority class (whole dev set)")
    ax.set_ylim(*min_span_limits(*ax.get_ylim()))
    lengths = sorted({c["length"] for c in record["cells"].values()})
    ax.set_xscale("log")
    ax.set_xticks(lengths, [str(p) for p in lengths])
    ax.minorticks_off()
    ax.set_xlabel("prompt length (virtual tokens)")
    ax.set_ylabel(f"{meta['primary_metric']} (dev, %)")
    per_point = sorted({s["n"] for by_p in stats.values() for s in by_p.values()})
    seeds = f"{per_point[0]}" if len(per_point) == 1 else f"{per_point[0]}-{per_point[-1]}"
    ax.set_title(f"{meta['task']} / {meta['model']}: {meta['settings']['steps']} updates, "
                 f"{meta['dev_examples']} dev examples, {seeds} seed(s) per point", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)  # beside: never over a point
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out


def batching_note(record: dict) -> str:
    """How the record's cells computed a batch: cells recorded before length bands (no key) ran one
    padded pass, as they did; a mixed grid names the banded cells (the same gradient to float rounding)."""
    banded = [key for key, cell in record["cells"].items() if cell.get("length_bands")]
    if not banded:
        return "Each batch computed in one padded pass."
    if len(banded) == len(record["cells"]):
        return "Each batch computed in length bands (the CPU default)."
    return (f"Batches computed in length bands (the CPU default since; the same gradient to float rounding) in "
            f"{', '.join(banded)}; in one padded pass in the cells recorded before.")


def ablation_section(records: Sequence[dict], figures_rel: str = "figures") -> str:
    """Markdown: per record, the table of mean (min-max over seeds) and its figure."""
    lines = ["## Prompt length and initialisation (the paper's Figure 3)", "",
             "Generated from `reports/ablation/<model>-<task>.json` (commands in each record). Each cell: the "
             "library's defaults for the model (optimizer, lr rule, batch) except the prompt length and init, a "
             "fixed number of updates, no dev evaluation during training; the prompt after the last update scored "
             "on the dev examples stated. Before: the same prompt untrained.", ""]
    for record in records:
        meta = record["meta"]
        stats = summarise(record)
        inits = [i for i in ABLATION_INITS if i in stats]
        before: dict[tuple[str, int], list[float]] = {}
        for cell in record["cells"].values():
            before.setdefault((cell["init"], cell["length"]), []).append(cell["primary_initial"])
        lines += [f"### {meta['task']} / {meta['model']}", "",
                  f"{meta['settings']['steps']} updates per run, {meta['dev_examples']} of {meta['dev_total']} dev "
                  f"examples, seeds {', '.join(str(s) for s in sorted({c['seed'] for c in record['cells'].values()}))}; "
                  f"{meta['primary_metric']} after training (before), mean over seeds [min-max]. "
                  f"{batching_note(record)}", "",
                  "| prompt length | " + " | ".join(inits) + " |", "|---|" + "---|" * len(inits)]
        for p in sorted({c["length"] for c in record["cells"].values()}):
            row = []
            for init in inits:
                s = stats[init].get(p)
                if s is None:
                    row.append("-")
                    continue
                spread = f" [{s['min']:.1f}-{s['max']:.1f}]" if s["n"] > 1 else ""
                row.append(f"{s['mean']:.1f}{spread} ({mean(before[(init, p)]):.1f})")
            lines.append(f"| {p} | " + " | ".join(row) + " |")
        lines += ["", f"![{meta['task']} {meta['model']} ablation]({figures_rel}/{figure_name(record)})", "",
                  "Commands:", ""] + [f"    {c}" for c in meta.get("commands", [])] + [""]
    return "\n".join(lines)


def load_records(out_dir: str | Path) -> list[dict]:
    return [load_record(p) for p in sorted(Path(out_dir).glob("*.json"))]

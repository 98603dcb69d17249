"""Suite evaluation: `softprompt eval --suite superglue PROMPT_DIR` (or `--suite glue`).

Every task of the suite that has a prompt in PROMPT_DIR (searched recursively for
*.safetensors prompt files) is evaluated on one split with its own prompt, by the task's
official metrics. A prompt's task is the `task` recorded in its metadata; a prompt file that
records none is matched by its file name (`cb.safetensors`) or, for run folders
(`runs/cb/prompt.safetensors`), by its folder's name. When several prompts match one task,
the one with the best recorded dev metric is used (ties: the first path in sorted order),
and the others are listed as skipped.

Scores:
  superglue  each task's contribution is metrics.superglue_task_score (CB: mean of accuracy
             and macro-F1, MultiRC: mean of F1a and EM, ReCoRD: mean of F1 and EM, the rest
             accuracy); the average is over the tasks evaluated. It is the benchmark's
             SuperGLUE score only when all eight tasks are present (`complete`), and a dev
             score, not a test-server score.
  glue       the GLUE convention: tasks with two metrics are averaged first (MRPC and QQP:
             mean of accuracy and F1), then the mean over tasks. The shared data covers SST-2,
             MRPC, QQP (an unofficial subset) and RTE (the GLUE and SuperGLUE RTE data are the
             same; scored by accuracy).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from softprompt.core.prompt_file import SavedPrompt, load_prompt, read_prompt
from softprompt.errors import PromptFileError, SoftPromptError
from softprompt.tasks.metrics import SUPERGLUE_TASK_METRICS, superglue_task_score

GLUE_TASK_METRICS: dict[str, tuple[str, ...]] = {
    "sst2": ("accuracy",),
    "mrpc": ("accuracy", "f1"),
    "qqp": ("accuracy", "f1"),
    "rte": ("accuracy",),
}

SUITES: dict[str, dict[str, tuple[str, ...]]] = {
    "superglue": dict(SUPERGLUE_TASK_METRICS),
    "glue": GLUE_TASK_METRICS,
}


def suite_tasks(suite: str) -> dict[str, tuple[str, ...]]:
    key = suite.lower()
    if key not in SUITES:
        raise SoftPromptError(f"unknown suite {suite!r}; suites: {', '.join(SUITES)}")
    return SUITES[key]


def task_score(suite: str, task: str, metrics: Mapping[str, float]) -> float:
    """One task's contribution to the suite's average."""
    if suite.lower() == "superglue":
        return superglue_task_score(task, metrics)
    names = suite_tasks(suite)[task]
    missing = [n for n in names if n not in metrics]
    if missing:
        raise SoftPromptError(f"{suite} task {task!r} needs metric(s) {', '.join(missing)}")
    return sum(metrics[n] for n in names) / len(names)


@dataclass
class FoundPrompt:
    task: str
    path: Path
    dev_metric: float | None


def _guess_task(path: Path, names: Sequence[str]) -> str | None:
    for candidate in (path.stem, path.parent.name):
        key = candidate.lower().replace("-", "")
        for name in names:
            if key == name.replace("-", ""):
                return name
    return None


def find_prompts(prompt_dir: str | Path, suite: str) -> tuple[dict[str, FoundPrompt], list[str]]:
    """({task: chosen prompt}, notes on skipped files) for the suite's tasks in prompt_dir."""
    root = Path(prompt_dir)
    if not root.is_dir():
        raise SoftPromptError(f"prompt folder {str(root)!r} not found (with --suite, PROMPT is a folder of prompt files)")
    names = list(suite_tasks(suite))
    candidates: dict[str, list[FoundPrompt]] = {}
    notes: list[str] = []
    for path in sorted(root.rglob("*.safetensors")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # temp files of an atomic write in progress
        try:
            meta = read_prompt(path).metadata
        except PromptFileError as err:
            notes.append(f"skipped {path}: {err}")
            continue
        task = (meta.task or "").lower() or None
        if task is None:
            task = _guess_task(path, names)
        if task not in names:
            continue
        metric = (meta.best_dev_metric or {}).get("value")
        candidates.setdefault(task, []).append(FoundPrompt(task, path, metric))
    chosen: dict[str, FoundPrompt] = {}
    for task in names:
        found = candidates.get(task)
        if not found:
            continue
        best = max(found, key=lambda f: (f.dev_metric is not None, f.dev_metric or 0.0, -found.index(f)))
        chosen[task] = best
        others = [str(f.path.relative_to(root)) for f in found if f is not best]
        if others:
            why = ("it has the best recorded dev metric" if best.dev_metric is not None
                   else "no dev metric recorded: the first in path order")
            notes.append(f"{task}: using {best.path.relative_to(root)} ({why}); skipped {', '.join(others)}")
    return chosen, notes


@dataclass
class TaskOutcome:
    task: str
    prompt: str
    metrics: dict[str, float] = field(default_factory=dict)
    score: float | None = None
    examples: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class SuiteResult:
    suite: str
    split: str
    model: str
    tasks: dict[str, TaskOutcome]
    notes: list[str]

    @property
    def scored(self) -> dict[str, float]:
        return {t: o.score for t, o in self.tasks.items() if o.score is not None}

    @property
    def average(self) -> float | None:
        scores = self.scored
        return sum(scores.values()) / len(scores) if scores else None

    @property
    def missing(self) -> list[str]:
        return [t for t in suite_tasks(self.suite) if t not in self.scored]

    @property
    def complete(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict:
        return {
            "suite": self.suite, "split": self.split, "model": self.model,
            "tasks": {t: {"prompt": o.prompt, "metrics": o.metrics, "official_metrics": list(suite_tasks(self.suite)[t]),
                          "score": o.score, "examples": o.examples, "seconds": round(o.seconds, 3), "error": o.error}
                      for t, o in self.tasks.items()},
            "average": self.average, "tasks_scored": len(self.scored), "tasks_total": len(suite_tasks(self.suite)),
            "complete": self.complete, "missing": self.missing, "notes": self.notes,
        }


def run_suite(
    lm,
    suite: str,
    prompt_dir: str | Path,
    data_dir: str | Path | None = None,
    split: str = "dev",
    batch_size: int = 32,
    max_examples: int | None = None,
    found: tuple[dict[str, FoundPrompt], list[str]] | None = None,
    progress=None,
) -> SuiteResult:
    """Evaluate each task of `suite` that has a prompt in prompt_dir. A task whose data or
    prompt fails is reported with its error and left out of the average."""
    from softprompt.evaluation.evaluator import evaluate
    from softprompt.tasks.registry import get_task

    chosen, notes = found or find_prompts(prompt_dir, suite)
    outcomes: dict[str, TaskOutcome] = {}
    for name, fp in chosen.items():
        outcome = TaskOutcome(name, str(fp.path))
        outcomes[name] = outcome
        if progress is not None:
            progress(name)
        try:
            task = get_task(name, data_dir)
            examples = task.load(split)[:max_examples]
            if not any(ex.target for ex in examples):
                raise SoftPromptError(f"{name} split {split!r} carries no labels (a test split?); use --split dev")
            saved: SavedPrompt = load_prompt(fp.path, lm)
            start = time.perf_counter()
            result = evaluate(lm, task, examples, saved.tensor, batch_size,
                              max_input_tokens=saved.metadata.input_tokens)
            outcome.seconds = time.perf_counter() - start
            outcome.metrics = result.metrics
            outcome.examples = len(examples)
            outcome.score = task_score(suite, name, result.metrics)
        except SoftPromptError as err:
            outcome.error = str(err)
    return SuiteResult(suite.lower(), split, getattr(lm, "model_id", "?"), outcomes, notes)

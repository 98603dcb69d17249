"""Domain transfer (the paper's Section 6 / Tables 1-2): train a prompt on one task and
evaluate it zero-shot on another task of the same format.

Pairs the shared data supports:

    qqp   -> mrpc    paraphrase: Quora questions -> news sentences
    mrpc  -> qqp     the reverse
    squad -> bioasq  extractive QA (generation): Wikipedia -> biomedical abstracts

QQP and MRPC share their field names and label words (tasks/glue.py); only the leading task
prefix ('qqp' / 'mrpc') differs. `prefix="source"` (the default) renders the target task's
inputs with the SOURCE task's prefix, so the prompt sees exactly the input format it was
trained on and only the domain changes, as in the paper's zero-shot setting; "target" keeps
the target's own prefix and "none" drops it. SQuAD and BioASQ share one format with no prefix.

    evaluate_transfer(lm, prompt_file, target)      a trained prompt (prompt tuning)
    model_tuning_transfer(lm, source, target, ...)  every weight tuned on the source, then scored
                                                     the same way: the paper's comparison
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from softprompt.core.model import PromptedLM
from softprompt.core.prompt_file import load_prompt
from softprompt.errors import SoftPromptError
from softprompt.evaluation.evaluator import evaluate
from softprompt.experiments.model_tuning import ModelTuningConfig, tune_model
from softprompt.tasks.base import Example, Task

TRANSFER_PAIRS: tuple[tuple[str, str], ...] = (("qqp", "mrpc"), ("mrpc", "qqp"), ("squad", "bioasq"))
PrefixMode = Literal["source", "target", "none"]


@dataclass
class TransferResult:
    source: str | None
    target: str
    split: str
    prefix: str | None
    metrics: dict[str, float]
    primary_metric: str
    examples: int
    seconds: float
    prompt: str | None  # the prompt file; None for a model-tuned source
    source_dev_metric: dict | None  # the source's dev score: name, value, step, metrics, examples (when known)
    method: str = "prompt tuning"
    budget: dict | None = None  # model tuning: the updates, batch, optimizer and lr it trained with

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _task(name_or_task: str | Task, data_dir) -> Task:
    if isinstance(name_or_task, Task):
        return name_or_task
    from softprompt.tasks.registry import get_task

    return get_task(name_or_task, data_dir)


def _source_prefix(source: str | None) -> str | None:
    """The prefix the source task renders its inputs with (None: it has no prefix)."""
    if not source:
        return None
    from softprompt.tasks.registry import task_class

    cls = task_class(source)
    return getattr(cls, "prefix", None) if cls is not None else None


def check_compatible_tasks(prompt_labels, source: str | None, target: Task, trained: str = "the prompt was trained") -> None:
    """What was trained (a prompt, or a tuned model) must answer in the target's label words
    (or both are generation tasks)."""
    target_labels = list(target.label_words) if target.label_words else None
    if (prompt_labels or None) != target_labels:
        raise SoftPromptError(
            f"{trained} on {source or 'an unnamed task'!r} with label words {prompt_labels}, "
            f"but {target.name!r} uses {target_labels}: zero-shot transfer needs the same output format"
        )


def use_prefix(task: Task, source: str | None, prefix: PrefixMode) -> str | None:
    """Set the prefix `task` renders its inputs with (see the module doc); return it (None: the
    task has no prefix)."""
    if not hasattr(task, "prefix"):
        return None
    if prefix == "source":
        src = _source_prefix(source)
        if src is not None:
            task.prefix = src
    elif prefix == "none":
        task.prefix = ""
    elif prefix != "target":
        raise SoftPromptError(f"prefix must be source, target or none, got {prefix!r}")
    return task.prefix


def evaluate_transfer(
    lm: PromptedLM,
    prompt_path: str | Path,
    target: str | Task,
    data_dir: str | Path | None = None,
    split: str = "dev",
    max_examples: int | None = None,
    batch_size: int = 16,
    prefix: PrefixMode = "source",
    max_new_tokens: int = 32,
) -> TransferResult:
    """Evaluate a saved prompt, zero-shot, on another task (same format and label words)."""
    saved = load_prompt(prompt_path, lm)
    source = saved.metadata.task
    task = _task(target, data_dir)
    check_compatible_tasks(saved.metadata.label_words, source, task)
    used_prefix = use_prefix(task, source, prefix)
    examples = task.load(split)[:max_examples]
    if not examples:
        raise SoftPromptError(f"{task.name} split {split!r} has no examples")
    start = time.perf_counter()
    result = evaluate(lm, task, examples, saved.tensor, batch_size, max_new_tokens=max_new_tokens,
                      max_input_tokens=saved.metadata.input_tokens)
    return TransferResult(
        source=source, target=task.name, split=split, prefix=used_prefix, metrics=result.metrics,
        primary_metric=task.primary_metric, examples=len(examples), seconds=time.perf_counter() - start,
        prompt=str(prompt_path), source_dev_metric=source_dev_score(prompt_path, saved.metadata.best_dev_metric),
    )


def _final_evaluation(metrics_log: Path) -> dict | None:
    """The last final evaluation in a run's metrics.jsonl (runs from before result.json recorded
    `dev_score`)."""
    if not metrics_log.is_file():
        return None
    found = None
    for line in metrics_log.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if event.get("event") == "final_eval":
            found = {"metrics": event["metrics"], "examples": event["examples"], "measured_by": "final evaluation"}
    return found


def source_dev_score(prompt_path: str | Path, best: dict | None) -> dict | None:
    """The in-domain score of a trained prompt: its run's score on the source's whole dev set
    (`dev_score` of the result.json beside it, when the file is that run's kept prompt), so it
    compares with model tuning's, which is always on the whole dev set; else `best`, the prompt
    file's own record of its best evaluation (which may be on a dev subset)."""
    from softprompt.training.trainer import METRICS_NAME, PROMPT_NAME, RESULT_NAME

    path = Path(prompt_path)
    if best is None or path.name != PROMPT_NAME or not (path.parent / RESULT_NAME).is_file():
        return best
    try:
        result = json.loads((path.parent / RESULT_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return best
    score = result.get("dev_score") or _final_evaluation(path.parent / METRICS_NAME)
    # the run that wrote result.json kept this prompt: same best update
    if not score or result.get("best_step") != best.get("step") or best.get("name") not in score["metrics"]:
        return best
    return {"name": best["name"], "value": score["metrics"][best["name"]], "step": best.get("step"),
            "metrics": score["metrics"], "examples": score["examples"], "measured_by": score.get("measured_by")}


def model_tuning_transfer(
    lm: PromptedLM,
    source: Task,
    target: Task,
    train: Sequence[Example],
    source_dev: Sequence[Example],
    config: ModelTuningConfig,
    split: str = "dev",
    max_examples: int | None = None,
    prefix: PrefixMode = "source",
    run_dir: str | Path | None = None,
    show_progress: bool = False,
) -> TransferResult:
    """The model-tuning side of the paper's Tables 1-2: tune every weight (of a private copy) on
    `source`, score it on the source's dev examples (in-domain) and then, zero-shot, on `target`
    rendered as a source prompt would see it (same prefix rule as `evaluate_transfer`)."""
    check_compatible_tasks(list(source.label_words) if source.label_words else None, source.name, target,
                           "the model was tuned")
    used_prefix = use_prefix(target, source.name, prefix)
    examples = target.load(split)[:max_examples]
    if not examples or not source_dev:
        raise SoftPromptError(f"model-tuning transfer needs {source.name} dev and {target.name} {split} examples")
    tuned = tune_model(lm, source, train, source_dev, config, run_dir=run_dir, keep_model=True,
                       show_progress=show_progress)
    assert tuned.model is not None and tuned.final_metrics is not None
    start = time.perf_counter()
    result = evaluate(tuned.model, target, examples, None, config.eval_batch_size,
                      max_input_tokens=config.max_input_tokens)
    seconds = time.perf_counter() - start
    in_domain = {"name": source.primary_metric, "value": tuned.final_metrics[source.primary_metric],
                 "step": tuned.steps, "metrics": tuned.final_metrics, "examples": tuned.dev_examples}
    budget = {"updates": config.max_steps, "batch_size": config.batch_size, "optimizer": config.optimizer,
              "learning_rate": config.learning_rate, "length_bands": tuned.config["length_bands"],
              "train_seconds": round(tuned.train_seconds, 1),
              "trainable_parameters": tuned.trainable_parameters}
    return TransferResult(
        source=source.name, target=target.name, split=split, prefix=used_prefix, metrics=result.metrics,
        primary_metric=target.primary_metric, examples=len(examples), seconds=seconds, prompt=None,
        source_dev_metric=in_domain, method="model tuning", budget=budget,
    )

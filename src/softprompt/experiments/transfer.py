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
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from softprompt.core.model import PromptedLM
from softprompt.core.prompt_file import load_prompt
from softprompt.errors import SoftPromptError
from softprompt.evaluation.evaluator import evaluate
from softprompt.tasks.base import Task

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
    prompt: str
    source_dev_metric: dict | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _task(name_or_task: str | Task, data_dir) -> Task:
    if isinstance(name_or_task, Task):
        return name_or_task
    from softprompt.tasks.registry import get_task

    return get_task(name_or_task, data_dir)


def _source_prefix(source: str | None, data_dir) -> str | None:
    """The prefix the source task renders its inputs with (None: it has no prefix)."""
    if not source:
        return None
    from softprompt.tasks.registry import task_class

    cls = task_class(source)
    return getattr(cls, "prefix", None) if cls is not None else None


def check_compatible_tasks(prompt_labels, source: str | None, target: Task) -> None:
    """The prompt must answer in the target's label words (or both are generation tasks)."""
    target_labels = list(target.label_words) if target.label_words else None
    if (prompt_labels or None) != target_labels:
        raise SoftPromptError(
            f"the prompt was trained on {source or 'an unnamed task'!r} with label words {prompt_labels}, "
            f"but {target.name!r} uses {target_labels}: zero-shot transfer needs the same output format"
        )


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
    used_prefix = getattr(task, "prefix", None)
    if hasattr(task, "prefix"):
        if prefix == "source":
            src = _source_prefix(source, data_dir)
            if src is not None:
                task.prefix = src
        elif prefix == "none":
            task.prefix = ""
        elif prefix != "target":
            raise SoftPromptError(f"prefix must be source, target or none, got {prefix!r}")
        used_prefix = task.prefix
    examples = task.load(split)[:max_examples]
    if not examples:
        raise SoftPromptError(f"{task.name} split {split!r} has no examples")
    start = time.perf_counter()
    result = evaluate(lm, task, examples, saved.tensor, batch_size, max_new_tokens=max_new_tokens,
                      max_input_tokens=saved.metadata.input_tokens)
    return TransferResult(
        source=source, target=task.name, split=split, prefix=used_prefix, metrics=result.metrics,
        primary_metric=task.primary_metric, examples=len(examples), seconds=time.perf_counter() - start,
        prompt=str(prompt_path), source_dev_metric=saved.metadata.best_dev_metric,
    )

"""What a task is: text-to-text examples plus the metric that scores predictions.

Every benchmark is cast as text in, text out (as T5 does). A classification task also
names its label words, so it can be evaluated by rank classification (the log-likelihood
of each label's tokens, argmax) and used for class-label prompt initialisation.

A built-in task renders its rows in one of two formats (`TaskFormat`):

    natural  a natural-language input ending in an answer cue ("...\nAnswer:") and label words
             that are single common words: the default for decoder-only models, which have no
             separate output side and only learn where the input tells them an answer follows.
    t5       T5's exact text-to-text format ('rte hypothesis: H premise: P' -> 'entailment'):
             the default for encoder-decoder models, which know where their output starts.
"""
from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from softprompt.errors import DataError

__all__ = ["DataError", "Example", "FORMAT_NAMES", "Split", "Task", "TaskFormat"]

FORMAT_NAMES: tuple[str, ...] = ("natural", "t5")
DEFAULT_FORMAT = "natural"  # the shipped models are decoder-only


def format_for(is_encoder_decoder: bool) -> str:
    """The default format for a model: T5's for encoder-decoder models, natural otherwise."""
    return "t5" if is_encoder_decoder else "natural"


@dataclass(frozen=True)
class Example:
    """One text-to-text example.

    input:   the text fed to the model (the task's template already applied).
    target:  the gold output text (for classification, the gold label word).
    options: for rank classification, the candidate outputs of this example (usually the
             task's label words; COPA-style tasks give per-example options). None for
             generation tasks.
    answers: every acceptable gold output (QA tasks score against all of them).
    group:   an id tying examples together for metrics (MultiRC question, ReCoRD query).
    meta:    anything else a metric needs (original label, idx, ...).
    fields:  the row's text fields the input was rendered from (premise, hypothesis, ...), so
             another format or a hand-written prompt can render the same example.
    """

    input: str
    target: str
    options: tuple[str, ...] | None = None
    answers: tuple[str, ...] = ()
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    fields: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def choices(self) -> tuple[str, ...]:
        """The options of a classification example (an error for a generation example)."""
        if self.options is None:
            raise ValueError(f"example {self.input[:40]!r} has no options (a generation example)")
        return self.options

    @property
    def label(self) -> int | None:
        """Index of the gold target within options (None for generation examples)."""
        if self.options is None:
            return None
        return self.options.index(self.target) if self.target in self.options else None


# "train", "dev", "test", or a task's extra split (e.g. BoolQ's "fewglue32-train")
Split = str


@dataclass(frozen=True)
class TaskFormat:
    """How a task's fields become the model's input, and the words its classes are called.

    template:    str.format template over the example's fields.
    label_words: one word per class, in the task's class order (None: the task's own, or
                 per-example options).
    """

    template: str
    label_words: tuple[str, ...] | None = None

    def render(self, fields: Mapping[str, str]) -> str:
        return self.template.format(**fields)


class Task(ABC):
    """A benchmark task: loads its splits from files and scores predictions.

    Subclasses set `name`, `kind`, `label_words` (classification) and `primary_metric`,
    and implement `load` and `compute_metrics`.
    """

    name: str = ""
    kind: Literal["classification", "generation"] = "classification"
    label_words: tuple[str, ...] | None = None
    primary_metric: str = "accuracy"
    # the built-in formats (empty: the task has one fixed format, e.g. a user's spec)
    formats: Mapping[str, TaskFormat] = {}
    format: str = DEFAULT_FORMAT

    def __init__(self, data_dir: str | Path | None = None, strict: bool = False):
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.strict = strict
        if self.formats:
            self.set_format(DEFAULT_FORMAT)

    @property
    def data_root(self) -> Path:
        """The benchmark data folder (an error naming the task when none was given)."""
        if self.data_dir is None:
            raise DataError(f"{self.name}: no data folder given (data_dir / --data-dir)")
        return self.data_dir

    def set_format(self, name: str) -> "Task":
        """Render examples in format `name` ('natural' or 't5'); sets the label words too."""
        if not self.formats:
            if name not in FORMAT_NAMES:
                raise DataError(f"format: must be one of {', '.join(FORMAT_NAMES)}, got {name!r}")
            return self  # a task with one fixed format (a user's spec) renders it whatever is asked
        if name not in self.formats:
            raise DataError(f"format: task {self.name!r} has formats {', '.join(self.formats)}, got {name!r}")
        self.format = name
        words = self.formats[name].label_words
        if words is not None:
            self.label_words = words
        return self

    def with_format(self, name: str) -> "Task":
        """A copy of this task rendering format `name`."""
        return copy.copy(self).set_format(name)

    def render(self, **fields: str) -> str:
        """The input text of an example with these fields, in the task's current format."""
        return self.formats[self.format].render(fields)

    @abstractmethod
    def load(self, split: Split) -> list[Example]:
        """Read one split from the original files; raise DataError naming file and line."""

    @abstractmethod
    def compute_metrics(self, predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        """Score predictions (one output string per example) by the benchmark's metric(s)."""

    def available_splits(self) -> list[str]:
        """Splits whose files exist (those `load` can read)."""
        found = []
        for split in ("train", "dev", "test"):
            try:
                self.split_path(split)
                found.append(split)
            except DataError:
                pass
        return found

    def split_path(self, split: Split) -> Path:  # pragma: no cover - overridden by file-based tasks
        raise DataError(f"task {self.name!r} has no file for split {split!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, data_dir={str(self.data_dir)!r})"

"""What a task is: text-to-text examples plus the metric that scores predictions.

Every benchmark is cast as text in, text out (as T5 does). A classification task also
names its label words, so it can be evaluated by rank classification (the log-likelihood
of each label's tokens, argmax) and used for class-label prompt initialisation.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence


from softprompt.errors import DataError

__all__ = ["DataError", "Example", "Split", "Task"]


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
    """

    input: str
    target: str
    options: tuple[str, ...] | None = None
    answers: tuple[str, ...] = ()
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> int | None:
        """Index of the gold target within options (None for generation examples)."""
        if self.options is None:
            return None
        return self.options.index(self.target) if self.target in self.options else None


Split = Literal["train", "dev", "test"]


class Task(ABC):
    """A benchmark task: loads its splits from files and scores predictions.

    Subclasses set `name`, `kind`, `label_words` (classification) and `primary_metric`,
    and implement `load` and `compute_metrics`.
    """

    name: str = ""
    kind: Literal["classification", "generation"] = "classification"
    label_words: tuple[str, ...] | None = None
    primary_metric: str = "accuracy"

    def __init__(self, data_dir: str | Path | None = None, strict: bool = False):
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.strict = strict

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

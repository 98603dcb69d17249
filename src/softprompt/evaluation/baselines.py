"""Baselines that need no model."""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from softprompt.tasks.base import Example, Task


def majority_baseline(task: Task, train: Sequence[Example], examples: Sequence[Example]) -> tuple[str, dict[str, float]]:
    """The most frequent target of `train`, and the task's metrics when every one of `examples` gets it."""
    label = Counter(ex.target for ex in train if ex.target).most_common(1)[0][0]
    return label, task.compute_metrics([label] * len(examples), examples)

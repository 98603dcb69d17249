"""Evaluate a prompt on a task: rank classification or greedy generation, then the metric."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor

from softprompt.core.model import PromptedLM
from softprompt.core.scoring import best_option
from softprompt.tasks.base import Example, Task


@dataclass
class EvalResult:
    metrics: dict[str, float]
    predictions: list[str]
    scores: list[list[float]] | None = None  # rank-classification log-likelihoods, per option
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def examples_per_second(self) -> float:
        return len(self.predictions) / self.seconds if self.seconds > 0 else float("nan")


def predict(
    lm: PromptedLM,
    examples: Sequence[Example],
    prompt: Tensor | None,
    batch_size: int = 32,
    max_new_tokens: int = 32,
    progress: Callable[[int], None] | None = None,
    max_input_tokens: int | None = None,
) -> tuple[list[str], list[list[float]] | None]:
    """Predictions for examples: the argmax option (classification) or greedy text.

    Examples are batched in order of input length (less padding, same results: scores do
    not depend on padding) and returned in their original order. Inputs keep their last
    max_input_tokens tokens (None: the model's default).
    """
    classify = all(ex.options is not None for ex in examples)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input))
    predictions: list[str] = [""] * len(examples)
    all_scores: list[list[float]] = [[] for _ in examples]
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        chunk = [examples[i] for i in idx]
        if classify:
            scores = lm.score_options([ex.input for ex in chunk], [ex.choices for ex in chunk], prompt,
                                      max_input_tokens=max_input_tokens)
            for i, ex, s in zip(idx, chunk, scores):
                predictions[i] = ex.choices[best_option(s)]
                all_scores[i] = s
        else:
            for i, text in zip(idx, lm.generate([ex.input for ex in chunk], prompt, max_new_tokens=max_new_tokens,
                                                        max_input_tokens=max_input_tokens)):
                predictions[i] = text
        if progress is not None:
            progress(len(chunk))
    return predictions, (all_scores if classify else None)


@torch.no_grad()
def evaluate(
    lm: PromptedLM,
    task: Task,
    examples: Sequence[Example],
    prompt: Tensor | None,
    batch_size: int = 32,
    max_new_tokens: int = 32,
    progress: Callable[[int], None] | None = None,
    max_input_tokens: int | None = None,
) -> EvalResult:
    """Score `prompt` ([length, embed] or None for no prompt) on examples by the task's metric."""
    start = time.perf_counter()
    predictions, scores = predict(lm, examples, prompt, batch_size, max_new_tokens, progress, max_input_tokens)
    metrics = task.compute_metrics(predictions, examples)
    return EvalResult(metrics, predictions, scores, time.perf_counter() - start)

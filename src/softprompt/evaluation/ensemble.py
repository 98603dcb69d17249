"""Prompt ensembles (the paper's Section 7 / Table 3): N prompts, one frozen model, one batch.

Every chunk of examples is scored in ONE batched pass: the batch holds each example once
per prompt (row k*n + i is example i under prompt k), and each row carries its own prompt
(PromptedLM.score_options with a per-row prompt list; prompts may differ in length). The
model is loaded once and runs N tasks' worth of rows together, which is the point of prompt
ensembling over model ensembling.

Combination: majority vote over the N predictions. Ties (possible with an even N, or with
three or more options) are broken by the log-likelihood summed over the N prompts, among the
tied options only (so no dev-set selection is needed and the rule is deterministic). The
summed log-likelihood is also reported alone as `combine="sum"`.

The result reports, as Table 3 does: every prompt's own metrics, their average, the best
single prompt (by the task's primary metric) and the ensemble's metrics.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Sequence

import torch
from torch import Tensor

from softprompt.core.batching import per_row_limits
from softprompt.core.model import PromptedLM
from softprompt.core.scoring import best_option
from softprompt.errors import SoftPromptError
from softprompt.tasks.base import Example, Task

Combine = Literal["vote", "sum"]


@dataclass
class EnsembleResult:
    """per_prompt[k]: prompt k's metrics; average: the mean of each metric over prompts;
    best: the metrics of the prompt with the highest primary metric (best_index);
    ensemble: the combined predictions' metrics."""

    task: str
    primary_metric: str
    per_prompt: list[dict[str, float]]
    average: dict[str, float]
    best: dict[str, float]
    best_index: int
    ensemble: dict[str, float]
    predictions: list[str]
    prompt_predictions: list[list[str]]
    scores: list[list[list[float]]]  # scores[k][i][j]: prompt k, example i, option j
    seconds: float
    combine: str = "vote"
    names: list[str] = field(default_factory=list)
    # with compare_separate: the seconds of N separate passes (one prompt each) over the same examples,
    # and the largest score difference between them and the shared pass
    separate_seconds: float | None = None
    separate_max_diff: float | None = None
    # per prompt, how it was trained (PromptMetadata.training); empty for in-memory prompts
    trained: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "task": self.task, "primary_metric": self.primary_metric, "combine": self.combine,
            "prompts": self.names, "per_prompt": self.per_prompt, "average": self.average,
            "best": self.best, "best_index": self.best_index, "ensemble": self.ensemble,
            "examples": len(self.predictions), "seconds": round(self.seconds, 3),
            "separate_seconds": None if self.separate_seconds is None else round(self.separate_seconds, 3),
            "separate_max_diff": self.separate_max_diff, "trained": self.trained,
        }


def batched_prompt_scores(
    lm: PromptedLM,
    examples: Sequence[Example],
    prompts: Sequence[Tensor | None],
    batch_size: int = 8,
    share_prefix: bool = True,
    max_input_tokens: int | Sequence[int | None] | None = None,
) -> list[list[list[float]]]:
    """scores[k][i][j] = log-likelihood of option j of example i under prompt k.

    batch_size counts examples per chunk; one forward pass (per score_options call) holds
    batch_size * len(prompts) rows. max_input_tokens: one truncation for all, or one per
    prompt (each prompt's inputs cut as it was trained)."""
    if not prompts:
        raise SoftPromptError("an ensemble needs at least one prompt")
    if any(ex.options is None for ex in examples):
        raise SoftPromptError("prompt ensembles need a classification task (examples with options)")
    n = len(prompts)
    limits = per_row_limits(max_input_tokens, n, unit="prompts")
    scores: list[list[list[float]]] = [[] for _ in range(n)]
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        inputs = [ex.input for _ in range(n) for ex in chunk]
        options = [ex.choices for _ in range(n) for ex in chunk]
        row_prompts = [p for p in prompts for _ in chunk]
        flat = lm.score_options(inputs, options, row_prompts, share_prefix=share_prefix,
                                max_input_tokens=[limit for limit in limits for _ in chunk])
        for k in range(n):
            scores[k].extend(flat[k * len(chunk):(k + 1) * len(chunk)])
    return scores


def combine_predictions(
    examples: Sequence[Example],
    scores: list[list[list[float]]],
    combine: Combine = "vote",
) -> list[str]:
    """Majority vote over prompts, ties broken by the summed log-likelihood of the tied
    options ("vote"); or the argmax of the summed log-likelihood ("sum")."""
    out = []
    for i, ex in enumerate(examples):
        per_prompt = [s[i] for s in scores]
        summed = [sum(s[j] for s in per_prompt) for j in range(len(ex.choices))]
        if combine == "sum":
            out.append(ex.choices[best_option(summed)])
            continue
        if combine != "vote":
            raise SoftPromptError(f"combine must be 'vote' or 'sum', got {combine!r}")
        votes = Counter(best_option(s) for s in per_prompt)
        top = max(votes.values())
        tied = [j for j, v in votes.items() if v == top]
        out.append(ex.choices[max(tied, key=lambda j: summed[j])])
    return out


@torch.no_grad()
def evaluate_ensemble(
    lm: PromptedLM,
    task: Task,
    examples: Sequence[Example],
    prompts: Sequence[Tensor],
    batch_size: int = 8,
    combine: Combine = "vote",
    names: Sequence[str] | None = None,
    max_input_tokens: int | Sequence[int | None] | None = None,
    compare_separate: bool = False,
) -> EnsembleResult:
    """Score N prompts on `examples` in shared batches; report per-prompt, average, best
    and ensemble metrics."""
    examples = list(examples)
    start = time.perf_counter()
    scores = batched_prompt_scores(lm, examples, list(prompts), batch_size, max_input_tokens=max_input_tokens)
    seconds = time.perf_counter() - start
    prompt_predictions = [[ex.choices[best_option(s)] for ex, s in zip(examples, sk)] for sk in scores]
    per_prompt = [task.compute_metrics(preds, examples) for preds in prompt_predictions]
    keys = list(per_prompt[0])
    average = {k: sum(m[k] for m in per_prompt) / len(per_prompt) for k in keys}
    best_index = max(range(len(per_prompt)), key=lambda k: per_prompt[k][task.primary_metric])
    predictions = combine_predictions(examples, scores, combine)
    separate_seconds = separate_max_diff = None
    if compare_separate:  # the cost the shared pass saves: each prompt in its own pass
        limits = per_row_limits(max_input_tokens, len(prompts), unit="prompts")
        start = time.perf_counter()
        alone = [batched_prompt_scores(lm, examples, [p], batch_size, max_input_tokens=limit)[0]
                 for p, limit in zip(prompts, limits)]
        separate_seconds = time.perf_counter() - start
        separate_max_diff = max(abs(a - b) for sk, ak in zip(scores, alone) for si, ai in zip(sk, ak)
                                for a, b in zip(si, ai))
    return EnsembleResult(
        task=task.name, primary_metric=task.primary_metric, per_prompt=per_prompt, average=average,
        best=per_prompt[best_index], best_index=best_index,
        ensemble=task.compute_metrics(predictions, examples), predictions=predictions,
        prompt_predictions=prompt_predictions, scores=scores, seconds=seconds, combine=combine,
        names=list(names) if names is not None else [f"prompt{k}" for k in range(len(prompts))],
        separate_seconds=separate_seconds, separate_max_diff=separate_max_diff,
    )


def evaluate_ensemble_files(
    lm: PromptedLM,
    task: Task,
    prompt_paths: Sequence[str],
    split: str = "dev",
    max_examples: int | None = None,
    batch_size: int = 8,
    combine: Combine = "vote",
    compare_separate: bool = False,
) -> EnsembleResult:
    """evaluate_ensemble on saved prompt files (each checked to belong to `lm`)."""
    from softprompt.core.prompt_file import load_prompt

    saved = [load_prompt(p, lm) for p in prompt_paths]
    examples = task.load(split)[:max_examples]
    result = evaluate_ensemble(lm, task, examples, [s.tensor for s in saved], batch_size, combine,
                               names=[str(p) for p in prompt_paths],
                               max_input_tokens=[s.metadata.input_tokens for s in saved],
                               compare_separate=compare_separate)
    result.trained = [s.metadata.training() for s in saved]
    return result

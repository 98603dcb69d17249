"""Metrics as the benchmarks define them. Values are percentages (0-100), as in the paper.

Classification metrics compare predicted label strings with gold label strings (the task's
label words); QA metrics compare generated text with every gold answer after the official
SQuAD normalisation. Where a metric is undefined (no positive predictions and no positive
gold, a constant predictor for Matthews correlation) it is 0, as scikit-learn returns.
"""
from __future__ import annotations

import math
import re
import string
from collections import Counter, defaultdict
from typing import Hashable, Iterable, Mapping, Sequence

__all__ = [
    "SUPERGLUE_TASK_METRICS", "accuracy", "accuracy_standard_error", "binary_f1", "exact_match", "gender_parity", "macro_f1",
    "matthews_corr", "multirc_metrics", "normalize_answer", "record_metrics", "squad_metrics",
    "superglue_score", "superglue_task_score", "token_f1",
]


def _check_lengths(predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        return 0.0
    return 100.0 * sum(p == r for p, r in zip(predictions, references)) / len(references)


def accuracy_standard_error(accuracy_points: float, examples: int) -> float:
    """Standard error, in points, of an accuracy measured on `examples` rows: 100 sqrt(p (1 - p) / n).

    The binomial error of the estimate; what a difference between two scores on the same rows is
    read against ("within a standard error")."""
    if examples <= 0:
        raise ValueError(f"a standard error needs at least one example, got {examples}")
    if not 0.0 <= accuracy_points <= 100.0:
        raise ValueError(f"accuracy must be in points (0-100), got {accuracy_points}")
    p = accuracy_points / 100.0
    return 100.0 * math.sqrt(p * (1.0 - p) / examples)


# ---------------------------------------------------------------- classification
def _f1_from_counts(tp: int, fp: int, fn: int) -> float:
    denominator = 2 * tp + fp + fn
    return 100.0 * 2 * tp / denominator if denominator else 0.0


def binary_f1(predictions: Sequence[str], references: Sequence[str], positive: str) -> float:
    """F1 of the positive class: 2TP / (2TP + FP + FN).

    A prediction counts as positive only when it equals `positive`; anything else (the other
    label, or text that is no label at all) counts as a negative prediction.
    """
    _check_lengths(predictions, references)
    tp = sum(p == positive and r == positive for p, r in zip(predictions, references))
    fp = sum(p == positive and r != positive for p, r in zip(predictions, references))
    fn = sum(p != positive and r == positive for p, r in zip(predictions, references))
    return _f1_from_counts(tp, fp, fn)


def macro_f1(predictions: Sequence[str], references: Sequence[str], labels: Iterable[str] | None = None) -> float:
    """Unweighted mean over classes of each class's one-vs-rest F1 (SuperGLUE's CB F1).

    `labels` fixes the classes (a class absent from both predictions and references scores
    0, as in T5's mean_multiclass_f1); by default the classes seen in the references.
    """
    _check_lengths(predictions, references)
    classes = list(dict.fromkeys(labels)) if labels is not None else sorted(set(references))
    if not classes:
        return 0.0
    return sum(binary_f1(predictions, references, c) for c in classes) / len(classes)


def matthews_corr(predictions: Sequence[str], references: Sequence[str], positive: str) -> float:
    """Matthews correlation coefficient x 100 (so in [-100, 100]), binary, as for AX-b."""
    _check_lengths(predictions, references)
    tp = sum(p == positive and r == positive for p, r in zip(predictions, references))
    fp = sum(p == positive and r != positive for p, r in zip(predictions, references))
    fn = sum(p != positive and r == positive for p, r in zip(predictions, references))
    tn = len(references) - tp - fp - fn
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 100.0 * (tp * tn - fp * fn) / denominator if denominator else 0.0


def multirc_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    groups: Sequence[Hashable],
    positive: str = "True",
) -> dict[str, float]:
    """MultiRC: F1a = binary F1 over all answer options; EM = share of questions (groups)
    whose every answer option is predicted correctly."""
    _check_lengths(predictions, references)
    _check_lengths(groups, references)
    per_group: dict[Hashable, bool] = defaultdict(lambda: True)
    for p, r, g in zip(predictions, references, groups):
        per_group[g] = per_group[g] and p == r
    em = 100.0 * sum(per_group.values()) / len(per_group) if per_group else 0.0
    return {"f1a": binary_f1(predictions, references, positive), "em": em}


def gender_parity(predictions: Sequence[str], groups: Sequence[Hashable]) -> float:
    """AX-g's gender parity: the share of minimal pairs (groups) whose predictions all agree."""
    _check_lengths(predictions, groups)
    seen: dict[Hashable, set[str]] = defaultdict(set)
    for p, g in zip(predictions, groups):
        seen[g].add(p)
    return 100.0 * sum(len(s) == 1 for s in seen.values()) / len(seen) if seen else 0.0


# ---------------------------------------------------------------- QA (SQuAD / ReCoRD)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD v1.1 normalisation: lowercase, drop punctuation, drop the
    articles a/an/the, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(gold)


def token_f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 (0-1) of one prediction against one gold answer, SQuAD v1.1."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """SQuAD EM and F1 (percent): per example the max over its gold answers, then the mean."""
    _check_lengths(predictions, answers)
    if not predictions:
        return {"em": 0.0, "f1": 0.0}
    em = f1 = 0.0
    for pred, golds in zip(predictions, answers):
        if isinstance(golds, str):
            raise TypeError("answers must be one sequence of gold strings per prediction, not a string")
        if not golds:
            continue  # no gold answer: scores 0, as an unanswerable reference can not be matched
        em += max(float(exact_match(pred, g)) for g in golds)
        f1 += max(token_f1(pred, g) for g in golds)
    n = len(predictions)
    return {"em": 100.0 * em / n, "f1": 100.0 * f1 / n}


def record_metrics(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """ReCoRD EM and F1: the official ReCoRD script uses SQuAD's normalisation and the max
    over all gold answers (one prediction per query)."""
    return squad_metrics(predictions, answers)


# ---------------------------------------------------------------- SuperGLUE average
# The metrics each task contributes to the SuperGLUE score; a task with two is averaged first.
# The diagnostics (AX-b, AX-g) are reported by the benchmark but are not part of the score.
SUPERGLUE_TASK_METRICS: dict[str, tuple[str, ...]] = {
    "boolq": ("accuracy",),
    "cb": ("accuracy", "macro_f1"),
    "copa": ("accuracy",),
    "multirc": ("f1a", "em"),
    "record": ("f1", "em"),
    "rte": ("accuracy",),
    "wic": ("accuracy",),
    "wsc": ("accuracy",),
}


def superglue_task_score(task: str, metrics: Mapping[str, float]) -> float:
    """One task's contribution to the SuperGLUE score (the mean of its benchmark metrics)."""
    key = task.lower()
    if key not in SUPERGLUE_TASK_METRICS:
        raise ValueError(f"{task!r} is not a scored SuperGLUE task ({', '.join(SUPERGLUE_TASK_METRICS)})")
    names = SUPERGLUE_TASK_METRICS[key]
    missing = [n for n in names if n not in metrics]
    if missing:
        raise ValueError(f"SuperGLUE task {task!r} needs metric(s) {', '.join(missing)}; got {', '.join(metrics)}")
    return sum(metrics[n] for n in names) / len(names)


def superglue_score(results: Mapping[str, Mapping[str, float]], require_all: bool = False) -> float:
    """The SuperGLUE average as the benchmark computes it.

    results maps task name -> that task's metrics (as Task.compute_metrics returns them).
    Tasks with two metrics are averaged first (CB (acc + macro-F1)/2, MultiRC (F1a + EM)/2,
    ReCoRD (F1 + EM)/2), then the mean is taken over tasks. Names outside the eight scored
    tasks (e.g. 'axb', 'axg') are ignored. The benchmark score needs all eight tasks;
    require_all=True raises when one is missing, otherwise the mean is over those given.
    """
    scored = {k.lower(): v for k, v in results.items() if k.lower() in SUPERGLUE_TASK_METRICS}
    if require_all:
        missing = [t for t in SUPERGLUE_TASK_METRICS if t not in scored]
        if missing:
            raise ValueError(f"SuperGLUE score needs every task; missing {', '.join(missing)}")
    if not scored:
        raise ValueError("no scored SuperGLUE task in results")
    return sum(superglue_task_score(t, m) for t, m in scored.items()) / len(scored)

"""Training defaults that fit the model and device in hand.

The paper's settings (Adafactor lr 0.3, p = 100, batch 32, 30,000 steps) were sized for T5 on
TPUs. Two things do not carry over:

* The learning rate. Adafactor without parameter scaling (and Adam) moves every prompt entry
  by about `lr` per update, whatever the gradient's size, so the right lr is proportional to
  the spread of the token embeddings the prompt sits among. lr = LR_PER_EMBEDDING_STD x the
  standard deviation of the model's input embeddings, as the model reads them (measured:
  `scripts/measure_lr_rule.py`, table in reports/lr_rule.md).
* The budget. On a CPU, a run with no flags is sized to finish in minutes, not hours: a
  short prompt, small batches, a few hundred updates, intermediate evaluations on a dev
  subset and the final score on the full dev set (measured times per task are in
  reports/results.md). On CUDA: the paper's budget.

Every value a run uses, and where it came from ("user", "rule", "cpu profile", ...), is
recorded in the run's result.json.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch

from softprompt.core.config import PromptConfig, TrainConfig
from softprompt.core.model import PromptedLM
from softprompt.core.prompt import default_init

# lr = LR_PER_EMBEDDING_STD * std(input embeddings): the multiple with the best mean held-out
# accuracy in reports/lr_rule.json (choose_lr_multiple; a test keeps the two in step), measured on
# SST-2 (both models) and on RTE (Gemma 3, 150 updates), where larger steps did worse, not better.
LR_PER_EMBEDDING_STD = 0.05


def task_of(run: dict) -> str:
    """The task an lr-rule measurement ran on (the first records, before `task` was stored, are SST-2)."""
    return str(run.get("task", "sst2"))


def comparable_multiples(runs: list[dict]) -> list[float]:
    """The multiples measured on every task of the record, so that no mean is over easier tasks only."""
    per_task: dict[str, set[float]] = {}
    for run in runs:
        per_task.setdefault(task_of(run), set()).add(run["multiple"])
    return sorted(set.intersection(*per_task.values())) if per_task else []


def choose_lr_multiple(runs: list[dict]) -> float:
    """From lr-rule measurements ({"task", "multiple", "held_out_accuracy_after"} per run, every
    task, model and seed): among the multiples measured on every task, the one with the best mean
    held-out accuracy."""
    groups: dict[float, list[float]] = {}
    for run in runs:
        groups.setdefault(run["multiple"], []).append(run["held_out_accuracy_after"])
    return max(comparable_multiples(runs), key=lambda m: sum(groups[m]) / len(groups[m]))


@dataclass(frozen=True)
class DeviceProfile:
    """The budget of a run with no flags on one kind of device."""

    name: str
    prompt_length: int
    batch_size: int
    max_steps: int
    eval_every: int
    # dev examples for the evaluations during training (None: all); the final score of the
    # best prompt is always on the full dev split.
    intermediate_eval_examples: int | None
    # compute a micro-batch in length bands (TrainConfig.length_bands): on a CPU padding costs
    # its full compute (benchmarks/length_bands.md); a GPU runs a padded batch's rows in parallel (not measured).
    length_bands: bool


CPU_PROFILE = DeviceProfile("cpu", prompt_length=20, batch_size=8, max_steps=300, eval_every=100,
                            intermediate_eval_examples=200, length_bands=True)
# The paper's budget (Lester et al. 2021, section 3): p = 100, batch 32, 30,000 steps.
CUDA_PROFILE = DeviceProfile("cuda", prompt_length=100, batch_size=32, max_steps=30_000, eval_every=1000,
                             intermediate_eval_examples=None, length_bands=False)


def profile_for(device: torch.device | str) -> DeviceProfile:
    return CUDA_PROFILE if torch.device(device).type == "cuda" else CPU_PROFILE


@torch.no_grad()
def embedding_std(lm: PromptedLM, n_tokens: int = 5000) -> float:
    """Standard deviation of the input embeddings of the n most common tokens, as the model
    reads them (through its own embedding module: Gemma's sqrt(hidden) scale included)."""
    ids = torch.tensor(lm.common_token_ids(n_tokens), dtype=torch.long)
    return float(lm.embed(ids).float().std())


def default_learning_rate(lm: PromptedLM) -> float:
    """The lr rule: LR_PER_EMBEDDING_STD x the embeddings' standard deviation, 3 significant digits."""
    return float(f"{LR_PER_EMBEDDING_STD * embedding_std(lm):.3g}")


@dataclass(frozen=True)
class ResolvedSettings:
    prompt: PromptConfig
    train: TrainConfig
    sources: dict[str, str]  # setting -> where its value came from

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt.__dict__.copy(), "train": self.train.to_dict(), "sources": dict(self.sources)}


def resolve_settings(lm: PromptedLM, prompt: PromptConfig, train: TrainConfig,
                     label_words: Sequence[str] | None = None) -> ResolvedSettings:
    """Fill every setting left as None ("auto") from the device profile, the task's label words
    (the init) and the lr rule."""
    profile = profile_for(lm.device)
    sources: dict[str, str] = {}
    prompt_updates: dict[str, Any] = {}
    train_updates: dict[str, Any] = {}

    def pick(updates: dict[str, Any], name: str, current: Any, value: Any, source: str) -> None:
        if current is None:
            updates[name] = value
            sources[name] = source
        else:
            sources[name] = "user"

    pick(prompt_updates, "init", prompt.init, default_init(label_words),
         "rule: class-label where the task has label words, else sampled-vocab")
    pick(prompt_updates, "length", prompt.length, profile.prompt_length, f"{profile.name} profile")
    pick(train_updates, "batch_size", train.batch_size, profile.batch_size, f"{profile.name} profile")
    pick(train_updates, "max_steps", train.max_steps, profile.max_steps, f"{profile.name} profile")
    pick(train_updates, "eval_every", train.eval_every,
         min(profile.eval_every, train.max_steps or profile.max_steps), f"{profile.name} profile")
    pick(train_updates, "intermediate_eval_examples", train.intermediate_eval_examples,
         profile.intermediate_eval_examples, f"{profile.name} profile")
    pick(train_updates, "length_bands", train.length_bands, profile.length_bands, f"{profile.name} profile")
    if train.learning_rate is None:
        std = embedding_std(lm)
        train_updates["learning_rate"] = float(f"{LR_PER_EMBEDDING_STD * std:.3g}")
        sources["learning_rate"] = f"rule: {LR_PER_EMBEDDING_STD} x embedding std {std:.4g}"
    else:
        sources["learning_rate"] = "user"
    return ResolvedSettings(replace(prompt, **prompt_updates), replace(train, **train_updates), sources)

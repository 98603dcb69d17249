"""Watch the training loss and say what to change when it diverges or does not move.

The loss is seen as the mean of each logging block (TrainConfig.log_every updates). Two
symptoms, each warned about once per run:

* diverging: the mean of the latest `window` blocks is above the first block's loss (worse
  than the untrained start) and more than `rise_factor` times the lowest such window so far:
  the learning rate is too large for this model. Windows, not single blocks, because one
  block of a few small batches is noisy (a 50% swing between blocks is common at low loss).
* flat: after a third of the run (at least `min_updates_flat` updates) no block has gone more
  than `flat_tolerance` below the first block (and the loss is not diverging): the learning
  rate is too small, or the task's format gives the model no place to answer.
* label prior: at the last update, with no other warning given, the mean of the second half's
  blocks is no lower than `1 - prior_tolerance` times the entropy of the training labels (`prior_entropy`, nats; given only
  where the loss is comparable with it: one target token per label). Predicting the label frequencies
  and ignoring the input scores that entropy, so such a prompt's probabilities are no better than the
  labels' balance (RTE, WiC, MRPC on the shipped models: reports/results.md); its argmax can still be
  right more often than chance (Gemma 3 on RTE: reports/recipe.md). Only then and over that span,
  because a task that learns can sit near the prior for half of a run (CB does). The advice, four
  times the updates, is measured: RTE on SmolLM2 sat at the prior for 300 updates and learned in 1200
  (reports/recipe.md).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable


def label_entropy(targets: Iterable[str]) -> float:
    """The entropy (nats) of the targets' frequencies: the loss of a prediction that ignores the input."""
    counts = Counter(targets)
    total = sum(counts.values())
    return -sum(n / total * math.log(n / total) for n in counts.values())


# The warnings LossWatch.observe gives: a function of the block losses and max_steps alone.
LOSS_WATCH_KINDS = ("diverging", "flat", "label_prior")


@dataclass
class LossWarning:
    step: int
    kind: str  # "diverging" | "flat" | "label_prior"
    message: str

    def to_dict(self) -> dict:
        return {"event": "warning", "step": self.step, "kind": self.kind, "message": self.message}


@dataclass
class LossWatch:
    learning_rate: float
    max_steps: int
    rise_factor: float = 1.5
    flat_tolerance: float = 0.02
    window: int = 3
    min_updates_flat: int = 30
    prior_entropy: float | None = None
    prior_tolerance: float = 0.05
    blocks: list[float] = field(default_factory=list)
    warned: set[str] = field(default_factory=set)

    def observe(self, step: int, block_loss: float) -> LossWarning | None:
        """Record one block's mean loss; return a warning the first time a symptom shows."""
        self.blocks.append(block_loss)
        windows = [sum(self.blocks[i - self.window:i]) / self.window
                   for i in range(self.window, len(self.blocks) + 1)]
        if "diverging" not in self.warned and len(windows) >= 2:
            latest, lowest = windows[-1], min(windows[:-1])
            if latest > self.blocks[0] and latest > self.rise_factor * lowest:
                self.warned.add("diverging")
                return LossWarning(step, "diverging", (
                    f"warning: the training loss is rising (mean of the last {self.window} logged blocks "
                    f"{latest:.3f}, lowest {lowest:.3f}, first {self.blocks[0]:.3f}; step "
                    f"{step}): the learning rate {self.learning_rate:g} is too large for this model; "
                    f"try --lr {self.learning_rate / 3:.3g}"))
        first = self.blocks[0]
        if (not self.warned and self.judges_flat_at(step)
                and first > 0.05 and min(self.blocks) >= (1 - self.flat_tolerance) * first):
            self.warned.add("flat")
            return LossWarning(step, "flat", (
                f"warning: the training loss has not gone down in {step} updates ({first:.3f} -> {block_loss:.3f}): "
                f"try a larger learning rate (--lr {self.learning_rate * 3:.3g}, now {self.learning_rate:g}) or "
                "a task format that ends in an answer cue (--format natural)"))
        second_half = self.blocks[len(self.blocks) // 2:]
        if (self.prior_entropy and not self.warned and step >= self.max_steps
                and sum(second_half) / len(second_half) >= (1 - self.prior_tolerance) * self.prior_entropy):
            self.warned.add("label_prior")
            return LossWarning(step, "label_prior", (
                f"warning: the training loss over the second half of the run ({sum(second_half) / len(second_half):.3f}) "
                f"is no lower than the entropy of the training labels ({self.prior_entropy:.3f}), the loss of predicting "
                "each label's frequency whatever the input: the prompt's probabilities are no better than that, though "
                "its ranking of the labels may be (see the dev score); more updates may help, e.g. "
                f"--steps {self.max_steps * 4} (four times the updates learned RTE on SmolLM2, whose 300 stayed at the "
                f"prior: reports/recipe.md; --resume --steps {self.max_steps * 4} continues this run from its last "
                "update), or a larger model"))
        return None

    def judges_flat_at(self, step: int) -> bool:
        """Whether a flat loss is warned about at this update: after a third of the run (of max_steps,
        so a run resumed with a longer --steps judges it later), and after min_updates_flat."""
        return step >= max(self.min_updates_flat, self.max_steps // 3)

    def state(self) -> dict:
        return {"blocks": list(self.blocks), "warned": sorted(self.warned)}

    def load_state(self, state: dict) -> None:
        self.blocks = list(state.get("blocks", []))
        self.warned = set(state.get("warned", []))

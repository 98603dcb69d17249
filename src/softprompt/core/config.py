"""Typed, validated configuration for prompts and training (defaults follow the paper)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from softprompt.errors import SoftPromptError

InitMethod = Literal["random-uniform", "sampled-vocab", "class-label", "text", "file"]
INIT_METHODS: tuple[str, ...] = ("random-uniform", "sampled-vocab", "class-label", "text", "file")
LR_SCHEDULES: tuple[str, ...] = ("constant", "linear")
REPARAMETERIZATIONS: tuple[str, ...] = ("none", "residual")


class ConfigError(SoftPromptError, ValueError):
    """A configuration field has an invalid value; the message names the field."""


def _check(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{field_name}: {message}")


@dataclass(frozen=True)
class PromptConfig:
    """How to build the soft prompt P, a [length, embed] matrix.

    length:             p, the number of virtual tokens (paper default 100; ablations 1-150).
                        None: chosen for the device (training.defaults: 20 on a CPU, 100 on CUDA).
    init:               random-uniform | sampled-vocab | class-label (paper default) | text | file.
                        None ("auto"): class-label when the task has label words, else
                        sampled-vocab (tasks whose options differ per example, e.g. COPA).
    init_range:         random-uniform draws from [-r, r]. None ("auto") sets r so the rows'
                        standard deviation matches the vocabulary embeddings' (r = sqrt(3) *
                        std); the paper's literal value for T5 is 0.5.
    vocab_sample_size:  sampled-vocab / class-label fallback rows come from this many most
                        common tokens (paper: 5,000).
    init_text:          the string embedded by the `text` init.
    init_file:          the prompt file the `file` init starts from.
    """

    length: int | None = None
    init: InitMethod | None = None
    init_range: float | None = None
    vocab_sample_size: int = 5000
    init_text: str | None = None
    init_file: str | None = None

    def __post_init__(self) -> None:
        _check(self.length is None or (isinstance(self.length, int) and self.length >= 1), "length",
               f"must be a positive integer, got {self.length!r}")
        _check(self.init is None or self.init in INIT_METHODS, "init", f"must be one of {', '.join(INIT_METHODS)}, got {self.init!r}")
        _check(self.init_range is None or self.init_range > 0, "init_range", f"must be positive, got {self.init_range!r}")
        _check(self.vocab_sample_size >= 1, "vocab_sample_size", f"must be positive, got {self.vocab_sample_size!r}")
        _check(self.init != "text" or bool(self.init_text), "init_text", "is required when init is 'text'")
        _check(self.init != "file" or bool(self.init_file), "init_file", "is required when init is 'file'")


@dataclass(frozen=True)
class TrainConfig:
    """How to train the prompt. Fixed defaults are the paper's: Adafactor with a constant lr, weight
    decay 1e-5, beta2 decay 0.8, no parameter scaling, early stopping on dev.

    Settings left None are "auto", filled when the model is known (training.defaults):
    learning_rate from the model's embedding scale (the paper's 0.3 was sized for T5's large
    embeddings); batch_size, max_steps, eval_every and intermediate_eval_examples from the
    device (a CPU gets 300 updates of batch 8, CUDA the paper's budget).

    max_steps counts optimizer updates; one update sees batch_size * grad_accum_steps examples.
    eval_every / checkpoint_every are in updates; early_stopping_patience counts evaluations
    without improvement of the dev metric (None: never stop early). max_eval_examples caps the
    dev set; intermediate_eval_examples scores the evaluations during training on a seeded
    random subset of it, after which the best prompt is scored on the whole (capped) dev set.
    activation_checkpointing = n recomputes every n-th layer's activations in the backward
    pass (1: all layers, 2: half; 0: off): less memory for extra compute, same gradients.
    group_by_length: each micro-batch holds rows of similar length (training.sampling), so
    less compute goes to padding; off by default (uniformly random batches, the paper's), because
    in paired runs it scored lower (reports/results.md, "Prompt tuning with a setting changed").
    length_bands: how a micro-batch is computed (objective "lm"), not what it holds: its rows sorted
    by length and cut into bands, one pass each, where a cut saves more padding than a pass costs
    (core.batching.length_bands). The loss and gradient are the one padded pass's, to float
    rounding; None (auto): on for a CPU, where padding costs its full compute, off on CUDA.
    lr_schedule: "constant", the paper's (Adafactor at a constant lr); "linear", the lr falls linearly
    from learning_rate at the first update to 0 after the last (a function of the update number alone,
    so a resumed run steps exactly as an uninterrupted one).
    reparameterization: "none", the paper's (P is trained directly); "residual", P trains through a
    shared bottleneck network with a residual connection (core.reparameterization, Razdaibiedina et al.
    2023), dropped after training: the prompt file holds the prompt the model read. reparam_hidden is
    the network's bottleneck width; reparam_relative_lr the step of its two weight matrices, relative to
    each matrix's RMS (the prompt and the LayerNorm take learning_rate, as P does).
    objective: "lm", the paper's text-to-text loss (NLL of the gold target's tokens); "choices",
    for classification tasks, the cross-entropy of the gold option among the example's options
    scored as evaluation scores them (core.scoring.choice_loss: one row per example when every
    option is one token on a decoder-only model, else one row per option).
    """

    optimizer: Literal["adafactor", "adam"] = "adafactor"
    learning_rate: float | None = None
    weight_decay: float = 1e-5
    adafactor_decay_rate: float = 0.8
    adam_betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int | None = None
    grad_accum_steps: int = 1
    max_steps: int | None = None
    eval_every: int | None = None
    checkpoint_every: int | None = None
    early_stopping_patience: int | None = None
    max_eval_examples: int | None = None
    intermediate_eval_examples: int | None = None
    eval_batch_size: int = 32
    max_input_tokens: int = 256
    log_every: int = 10
    seed: int = 0
    activation_checkpointing: int = 0
    group_by_length: bool = False
    length_bands: bool | None = None
    objective: Literal["lm", "choices"] = "lm"
    lr_schedule: Literal["constant", "linear"] = "constant"
    reparameterization: Literal["none", "residual"] = "none"
    reparam_hidden: int = 256
    reparam_relative_lr: float = 0.01
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.optimizer in ("adafactor", "adam"), "optimizer", f"must be adafactor or adam, got {self.optimizer!r}")
        _check(self.learning_rate is None or self.learning_rate > 0, "learning_rate",
               f"must be positive, got {self.learning_rate!r}")
        _check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay!r}")
        _check(0 < self.adafactor_decay_rate <= 1, "adafactor_decay_rate", f"must be in (0, 1], got {self.adafactor_decay_rate!r}")
        for name in ("grad_accum_steps", "eval_batch_size", "max_input_tokens", "log_every"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, name, f"must be a positive integer, got {value!r}")
        _check(isinstance(self.activation_checkpointing, int) and self.activation_checkpointing >= 0,
               "activation_checkpointing", f"must be an integer >= 0, got {self.activation_checkpointing!r}")
        _check(self.objective in ("lm", "choices"), "objective", f"must be lm or choices, got {self.objective!r}")
        _check(self.lr_schedule in LR_SCHEDULES, "lr_schedule",
               f"must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        _check(self.reparameterization in REPARAMETERIZATIONS, "reparameterization",
               f"must be one of {', '.join(REPARAMETERIZATIONS)}, got {self.reparameterization!r}")
        _check(isinstance(self.reparam_hidden, int) and self.reparam_hidden >= 1, "reparam_hidden",
               f"must be a positive integer, got {self.reparam_hidden!r}")
        _check(self.reparam_relative_lr > 0, "reparam_relative_lr", f"must be positive, got {self.reparam_relative_lr!r}")
        _check(isinstance(self.group_by_length, bool), "group_by_length", f"must be true or false, got {self.group_by_length!r}")
        _check(self.length_bands is None or isinstance(self.length_bands, bool), "length_bands",
               f"must be true, false or None (auto), got {self.length_bands!r}")
        for name in ("batch_size", "max_steps", "eval_every", "checkpoint_every", "early_stopping_patience",
                     "max_eval_examples", "intermediate_eval_examples"):
            value = getattr(self, name)
            _check(value is None or (isinstance(value, int) and value >= 1), name, f"must be a positive integer or None, got {value!r}")

    @property
    def is_resolved(self) -> bool:
        """True once every "auto" setting has a value (training.defaults.resolve_settings)."""
        return None not in (self.learning_rate, self.batch_size, self.max_steps, self.eval_every, self.length_bands)

    @property
    def effective_checkpoint_every(self) -> int:
        assert self.eval_every is not None, "resolve the config first"
        return self.checkpoint_every or self.eval_every

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The value a setting had in runs recorded before it existed (their result.json and checkpoints
# lack it): readers fill it in from here.
PRE_SETTING_VALUES: dict[str, Any] = {"group_by_length": False, "objective": "lm", "length_bands": False,
                                      "lr_schedule": "constant", "reparameterization": "none", "reparam_hidden": 256,
                                      "reparam_relative_lr": 0.01}


def as_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)

"""The soft prompt P: a trainable [length, embed] matrix, and the paper's initialisations.

    random-uniform  U[-r, r]; r = 0.5 in the paper (T5). With init_range None ("auto"),
                    r = sqrt(3) * std(vocabulary embeddings), so rows have the same spread as
                    real token embeddings whatever the model's embedding norm (a uniform on
                    [-r, r] has std r / sqrt(3)).
    sampled-vocab   each row is the embedding of a token drawn without replacement from the
                    vocab_sample_size (5,000) most common tokens (see PromptedLM.common_token_ids).
    class-label     row i is the average of label i's token embeddings (label i as the model
                    sees it when scoring); rows past the labels come from sampled-vocab.
    text            the embedded tokens of a string, repeated to fill the prompt (and cut if
                    longer), as PEFT's TEXT init does.
    file            the weights of a saved prompt file (checked to belong to this model).

Every init embeds tokens through the model's own embedding module, so the prompt lives in
the space the model reads (Gemma's sqrt(hidden) scaling included).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import torch
from torch import Tensor, nn

from softprompt.core.config import ConfigError, InitMethod, PromptConfig
from softprompt.core.model import PromptedLM


class SoftPrompt(nn.Module):
    """P, shape [length, embed]. Kept in float32 whatever the model's dtype, so small
    updates are not lost to bfloat16 rounding; it is cast when inserted.

    With a reparameterization (core.reparameterization, training only) the prompt the model reads
    is `forward()`, a function of `weight` and the network's parameters; `materialise()` is that
    prompt as a plain tensor, what a prompt file holds. Without one both are `weight`."""

    def __init__(self, weight: Tensor, reparameterization: nn.Module | None = None):
        super().__init__()
        if weight.dim() != 2:
            raise ValueError(f"a soft prompt is [length, embed], got shape {tuple(weight.shape)}")
        self.weight = nn.Parameter(weight.detach().clone().float())
        self.reparameterization = reparameterization

    @property
    def length(self) -> int:
        return self.weight.shape[0]

    @property
    def embed_dim(self) -> int:
        return self.weight.shape[1]

    def forward(self) -> Tensor:
        """The prompt the model reads, [length, embed], differentiable in every trainable parameter."""
        if self.reparameterization is None:
            return self.weight
        return self.reparameterization(self.weight)

    @torch.no_grad()
    def materialise(self) -> Tensor:
        """The prompt the model reads, detached: what is evaluated, saved and served."""
        return self().detach()

    @classmethod
    def initialise(
        cls,
        lm: PromptedLM,
        config: PromptConfig,
        label_words: Sequence[str] | None = None,
        seed: int = 0,
    ) -> "SoftPrompt":
        return cls(initial_prompt(lm, config, label_words, seed))


@torch.no_grad()
def _vocab_std(lm: PromptedLM, n: int) -> float:
    ids = torch.tensor(lm.common_token_ids(n), dtype=torch.long)
    return lm.embed(ids).float().std().item()


@torch.no_grad()
def random_uniform(lm: PromptedLM, length: int, init_range: float | None, generator: torch.Generator, vocab_sample_size: int = 5000) -> Tensor:
    r = init_range if init_range is not None else math.sqrt(3.0) * _vocab_std(lm, vocab_sample_size)
    return (torch.rand(length, lm.hidden_size, generator=generator) * 2 - 1) * r


@torch.no_grad()
def sampled_vocab(lm: PromptedLM, length: int, vocab_sample_size: int, generator: torch.Generator) -> Tensor:
    pool = torch.tensor(lm.common_token_ids(vocab_sample_size), dtype=torch.long)
    if len(pool) == 0:
        raise ConfigError("vocab_sample_size: the tokenizer has no ordinary tokens to sample from")
    if length <= len(pool):
        picks = pool[torch.randperm(len(pool), generator=generator)[:length]]
    else:
        picks = pool[torch.randint(len(pool), (length,), generator=generator)]
    return lm.embed(picks).float().cpu()


@torch.no_grad()
def class_label(lm: PromptedLM, length: int, label_words: Sequence[str], vocab_sample_size: int, generator: torch.Generator) -> Tensor:
    if not label_words:
        raise ConfigError("init: class-label needs label words; this task has none (use sampled-vocab)")
    rows = sampled_vocab(lm, length, vocab_sample_size, generator)
    for i, word in enumerate(list(label_words)[:length]):
        ids = label_token_ids(lm, word)
        rows[i] = lm.embed(torch.tensor(ids, dtype=torch.long)).float().mean(0).cpu()
    return rows


def default_init(label_words: Sequence[str] | None) -> InitMethod:
    """The paper's class-label init where the task has label words; sampled-vocab otherwise."""
    return "class-label" if label_words else "sampled-vocab"


def label_token_ids(lm: PromptedLM, word: str) -> list[int]:
    """The tokens of a label as the model scores it (after a space, for decoder-only models;
    without the EOS a seq2seq tokenizer appends)."""
    if lm.is_encoder_decoder:
        ids = lm.tokenizer(word, add_special_tokens=False).input_ids
    else:
        ids = lm.tokenizer(" " + word, add_special_tokens=False).input_ids
    if not ids:
        raise ConfigError(f"label word {word!r} tokenises to nothing")
    return ids


@torch.no_grad()
def from_text(lm: PromptedLM, length: int, text: str) -> Tensor:
    ids = lm.tokenizer(text, add_special_tokens=False).input_ids
    if not ids:
        raise ConfigError(f"init_text {text!r} tokenises to nothing")
    ids = (ids * math.ceil(length / len(ids)))[:length]
    return lm.embed(torch.tensor(ids, dtype=torch.long)).float().cpu()


def initial_prompt(
    lm: PromptedLM,
    config: PromptConfig,
    label_words: Sequence[str] | None = None,
    seed: int = 0,
) -> Tensor:
    """Build the initial [length, embed] prompt for `lm` as `config.init` says.

    config.length None ("auto") must have been resolved for the device first
    (training.defaults.resolve_settings), except for the file init, which takes the file's length.
    """
    generator = torch.Generator().manual_seed(seed)
    config = replace(config, init=config.init or default_init(label_words))
    if config.init == "file":
        return _from_file(lm, config)
    length = config.length
    if length is None:
        raise ConfigError("length: None (auto) is resolved by training.defaults.resolve_settings; give a length")
    if config.init == "random-uniform":
        return random_uniform(lm, length, config.init_range, generator, config.vocab_sample_size)
    if config.init == "sampled-vocab":
        return sampled_vocab(lm, length, config.vocab_sample_size, generator)
    if config.init == "class-label":
        return class_label(lm, length, label_words or (), config.vocab_sample_size, generator)
    return from_text(lm, length, config.init_text or "")


def _from_file(lm: PromptedLM, config: PromptConfig) -> Tensor:
    from softprompt.core.prompt_file import (
        load_prompt,  # local: prompt_file is heavier and rarely needed here
    )

    if not config.init_file:
        raise ConfigError("init_file: is required when init is 'file'")
    saved = load_prompt(config.init_file, lm)
    if config.length is not None and saved.tensor.shape[0] != config.length:
        raise ConfigError(
            f"length: {config.length} does not match the {saved.tensor.shape[0]} rows of init file {config.init_file}"
        )
    return saved.tensor.float().clone()

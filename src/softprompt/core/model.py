"""The frozen-model adapter: any Hugging Face LM, frozen, with soft prompts prepended.

Shapes follow the official prompt-tuning code's convention: `[batch, length, embed]`. What a
batch looks like is in `batching`; scores and the loss in `scoring`; decoding in `generation`.
`PromptedLM` holds the model and tokenizer and offers those as methods.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from softprompt.core import batching, generation, scoring
from softprompt.core.batching import EncodedRow, PaddingSide, PromptedBatch, RowLimits, RowPrompts
from softprompt.core.config import ConfigError

__all__ = ["EncodedRow", "PaddingSide", "PromptedBatch", "PromptedLM", "RowLimits", "RowPrompts"]


class PromptedLM:
    """A frozen language model plus the logic to run it with soft prompts.

    Every model weight has requires_grad=False; gradients reach only the prompt tensors
    passed in. Text is embedded by the model's own input-embedding module, so prompts live
    in the same space as token embeddings (Gemma scales by sqrt(hidden) inside that module).
    """

    def __init__(self, model: nn.Module, tokenizer, model_id: str, max_input_tokens: int = 512):
        # a transformers PreTrainedModel; typed Any because its API (config, base_model,
        # get_input_embeddings, ...) is dynamic per architecture
        self.model: Any = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.max_input_tokens = max_input_tokens
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        model.eval()  # dropout off: the frozen model is a fixed function of the prompt
        for param in model.parameters():
            param.requires_grad_(False)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._fingerprint: str | None = None
        self._common_ids: list[int] | None = None

    # ----------------------------------------------------------------- properties
    @property
    def config(self):
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.input_embeddings.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.input_embeddings.weight.dtype

    @property
    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def hidden_size(self) -> int:
        return self.input_embeddings.weight.shape[1]

    @property
    def vocab_size(self) -> int:
        return self.input_embeddings.weight.shape[0]

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    @property
    def eos_id(self) -> int | None:
        return self.tokenizer.eos_token_id

    def set_activation_checkpointing(self, every_n_layers: int) -> None:
        """Recompute layer activations in the backward pass instead of storing them, for every
        n-th layer (1: all layers, 2: half of them; 0: off). With n = 1 training memory drops
        to about one layer's activations for one extra forward; n = 2 halves both.

        transformers checkpoints a layer only while `layer.training` is set, so that flag is
        set on the layers alone: their submodules stay in eval mode (dropout off), and the
        computation, hence the gradient, is the same as without checkpointing.
        """
        from transformers.modeling_layers import GradientCheckpointingLayer

        enabled = every_n_layers > 0
        if enabled:
            if not getattr(self.model, "supports_gradient_checkpointing", False):
                raise ConfigError(f"activation_checkpointing: {type(self.model).__name__} does not support it")
            self.model.activation_checkpointing_enable({"use_reentrant": False}, every_n_layers=every_n_layers)
        elif getattr(self.model, "is_activation_checkpointing", False):
            self.model.activation_checkpointing_disable()
        for module in self.model.modules():
            if isinstance(module, GradientCheckpointingLayer):
                module.training = enabled

    def embed(self, ids: Tensor) -> Tensor:
        """Token ids [..., n] -> embeddings [..., n, embed], exactly as the model embeds text."""
        return self.input_embeddings(ids.to(self.device))

    def fingerprint(self) -> str:
        """A short hash of the input-embedding matrix, identifying the model a prompt fits.

        Hashes the shape and 64 evenly spaced rows rounded to bfloat16, so the same model
        loaded in float32 on a CPU or bfloat16 on a GPU gives the same fingerprint.
        """
        if self._fingerprint is None:
            weight = self.input_embeddings.weight.detach()
            rows = torch.linspace(0, weight.shape[0] - 1, 64).long().to(weight.device)
            sample = weight[rows].to(torch.bfloat16).float().cpu().contiguous()
            digest = hashlib.sha256(f"{tuple(weight.shape)}".encode())
            digest.update(sample.numpy().tobytes())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    def common_token_ids(self, n: int) -> list[int]:
        """The n most common ordinary tokens, by id order.

        BPE vocabularies number merges in the order they were learned (most frequent pair
        first) and SentencePiece sorts pieces by score, so low ids are the frequent ones.
        Special, added and byte-fallback (<0xNN>) tokens are skipped.
        """
        if self._common_ids is None:
            special = set(self.tokenizer.all_special_ids)
            special.update(getattr(self.tokenizer, "added_tokens_decoder", {}).keys())
            byte_fallback = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
            pieces = self.tokenizer.convert_ids_to_tokens(list(range(min(self.vocab_size, len(self.tokenizer)))))
            self._common_ids = [
                i for i, piece in enumerate(pieces)
                if i not in special and piece is not None and piece.strip() != "" and not byte_fallback.match(piece)
            ]
        return self._common_ids[:n]

    # ----------------------------------------------------------------- text in, scores and text out
    def encode(
        self, text: str, target: str | None = None, add_eos: bool = False, max_input_tokens: int | None = None
    ) -> EncodedRow:
        """Tokenise an input (and optionally a target): see `batching.encode`."""
        return batching.encode(self, text, target, add_eos, max_input_tokens)

    def build_batch(
        self, rows: Sequence[EncodedRow], prompts: RowPrompts = None, padding_side: PaddingSide = "left"
    ) -> PromptedBatch:
        """Pad rows into one batch, each with its own prompt ([length, embed] or None)."""
        return batching.build_batch(self, rows, prompts, padding_side)

    def target_log_probs(self, batch: PromptedBatch) -> Tensor:
        """Log-probability of every target token, [n_targets] (differentiable w.r.t. prompts)."""
        return scoring.target_log_probs(self, batch)

    def loss(self, batch: PromptedBatch) -> Tensor:
        """The text-to-text loss: mean negative log-likelihood over all target tokens."""
        return scoring.loss(self, batch)

    def sequence_log_probs(self, batch: PromptedBatch) -> Tensor:
        """Summed log-probability of each row's target, [batch]."""
        return scoring.sequence_log_probs(self, batch)

    def score_options(
        self,
        inputs: Sequence[str],
        options: Sequence[Sequence[str]],
        prompts: RowPrompts = None,
        share_prefix: bool = True,
        max_input_tokens: RowLimits = None,
    ) -> list[list[float]]:
        """Rank classification: scores[i][j] = summed log-likelihood of options[i][j] given inputs[i]."""
        return scoring.score_options(self, inputs, options, prompts, share_prefix, max_input_tokens)

    def generate(
        self,
        inputs: Sequence[str],
        prompts: RowPrompts = None,
        max_new_tokens: int = 32,
        max_input_tokens: RowLimits = None,
    ) -> list[str]:
        """Greedy decoding with a KV cache; each row may carry its own prompt (and truncation)."""
        return generation.generate(self, inputs, prompts, max_new_tokens, max_input_tokens)

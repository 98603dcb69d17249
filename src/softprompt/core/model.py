"""The frozen-model adapter: runs any Hugging Face LM with soft prompts prepended.

Shapes follow the official prompt-tuning code's convention: `[batch, length, embed]`.

Layout of one row, decoder-only (left padding, the default):

    [pad ... pad][BOS?][P_0 ... P_{p-1}][input tokens][target tokens]

and with right padding the pads move to the end. Encoder-decoder models get the prompt at
the front of the encoder input ([P][input tokens][EOS][pad...]) and the target on the decoder
side. Padding never sits between prompt and text, and position ids are counted over real
tokens only, so a row's logits do not depend on how much padding its batch has.

Each row may carry its own prompt (or none), of its own length: one forward pass serves a
mixed batch of tasks, which is what the server and prompt ensembles are built on.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

PaddingSide = Literal["left", "right"]
RowPrompts = Tensor | Sequence[Tensor | None] | None
# inputs keep their last N tokens: one N for the batch, one per row (None: the model's), or None
RowLimits = int | Sequence[int | None] | None


@dataclass(frozen=True)
class EncodedRow:
    """Token ids of one example, before the prompt goes in.

    prefix_ids: tokens placed before the prompt (the BOS token of decoder-only models that
                use one; empty otherwise).
    input_ids:  the input text's tokens (for encoder-decoder models, ending in EOS).
    target_ids: the tokens to score or train on (empty when only generating).
    """

    prefix_ids: tuple[int, ...]
    input_ids: tuple[int, ...]
    target_ids: tuple[int, ...] = ()


@dataclass
class PromptedBatch:
    """A padded batch ready for the model.

    inputs_embeds:    [batch, length, embed]  (the encoder's input for encoder-decoder models)
    attention_mask:   [batch, length]         1 on real tokens and prompt rows, 0 on padding
    position_ids:     [batch, length]         counted over real positions only (decoder-only)
    target_ids:       [n_targets]             every row's target tokens, concatenated
    target_rows:      [n_targets]             which row each target token belongs to
    target_positions: [n_targets]             (decoder-only) position whose hidden state predicts it
    decoder_input_ids / decoder_attention_mask: [batch, target_length] (encoder-decoder only)
    """

    inputs_embeds: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    target_ids: Tensor
    target_rows: Tensor
    target_positions: Tensor
    decoder_input_ids: Tensor | None = None
    decoder_attention_mask: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.inputs_embeds.shape[0]


def _per_row_prompts(prompts: RowPrompts, batch_size: int) -> list[Tensor | None]:
    if prompts is None:
        return [None] * batch_size
    if isinstance(prompts, Tensor):
        if prompts.dim() != 2:
            raise ValueError(f"a shared prompt must be [length, embed], got shape {tuple(prompts.shape)}")
        return [prompts] * batch_size
    prompts = list(prompts)
    if len(prompts) != batch_size:
        raise ValueError(f"{len(prompts)} prompts for a batch of {batch_size} rows")
    return prompts


def _per_row_limits(limits: RowLimits, batch_size: int) -> list[int | None]:
    if limits is None or isinstance(limits, int):
        return [limits] * batch_size
    limits = list(limits)
    if len(limits) != batch_size:
        raise ValueError(f"{len(limits)} input limits for a batch of {batch_size} rows")
    return limits


class PromptedLM:
    """A frozen language model plus the logic to run it with soft prompts.

    Every model weight has requires_grad=False; gradients reach only the prompt tensors
    passed in. Text is embedded by the model's own input-embedding module, so prompts live
    in the same space as token embeddings (Gemma scales by sqrt(hidden) inside that module).
    """

    def __init__(self, model: nn.Module, tokenizer, model_id: str, max_input_tokens: int = 512):
        self.model = model
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
                raise ValueError(f"{type(self.model).__name__} does not support activation checkpointing")
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

    # ----------------------------------------------------------------- tokenising
    def encode(
        self, text: str, target: str | None = None, add_eos: bool = False, max_input_tokens: int | None = None
    ) -> EncodedRow:
        """Tokenise an input (and optionally a target) into an EncodedRow.

        Decoder-only: the target follows the input after a space; its ids are what the
        joint text adds after the input's ids (robust to tokenisers that merge across the
        boundary or add a prefix space). add_eos appends EOS to the target, so the model
        learns to stop (generation tasks). Encoder-decoder: the tokenizer's own EOS ends
        both sides, as in T5.
        Inputs longer than max_input_tokens (default: the model's setting) keep their end, where
        the task's cue sits.
        """
        tok = self.tokenizer
        limit = self.max_input_tokens if max_input_tokens is None else max_input_tokens
        if self.is_encoder_decoder:
            input_ids = tok(text).input_ids
            if len(input_ids) > limit:
                input_ids = input_ids[-limit:]
            target_ids = tok(target).input_ids if target is not None else []
            return EncodedRow((), tuple(input_ids), tuple(target_ids))

        alone = tok(text).input_ids
        prefix, ids = [], alone
        if ids and tok.bos_token_id is not None and ids[0] == tok.bos_token_id:
            prefix, ids = ids[:1], ids[1:]
        target_ids: list[int] = []
        if target is not None:
            target_ids = self._target_ids(text, target, alone)
            if add_eos and self.eos_id is not None:
                target_ids.append(self.eos_id)
        if len(ids) > limit:
            ids = ids[-limit:]
        return EncodedRow(tuple(prefix), tuple(ids), tuple(target_ids))

    def _target_ids(self, text: str, target: str, alone: list[int]) -> list[int]:
        joint = self.tokenizer(text + " " + target).input_ids
        if joint[:len(alone)] == alone and len(joint) > len(alone):
            return joint[len(alone):]
        return self.tokenizer(" " + target, add_special_tokens=False).input_ids

    # ----------------------------------------------------------------- batching
    def build_batch(
        self,
        rows: Sequence[EncodedRow],
        prompts: RowPrompts = None,
        padding_side: PaddingSide = "left",
    ) -> PromptedBatch:
        """Pad rows into one batch, each with its own prompt ([length, embed] or None)."""
        row_prompts = _per_row_prompts(prompts, len(rows))
        if self.is_encoder_decoder:
            return self._build_encoder_decoder(rows, row_prompts, padding_side)
        return self._build_decoder_only(rows, row_prompts, padding_side)

    def _build_decoder_only(self, rows, row_prompts, padding_side) -> PromptedBatch:
        lengths = [
            len(r.prefix_ids) + (0 if p is None else p.shape[0]) + len(r.input_ids) + len(r.target_ids)
            for r, p in zip(rows, row_prompts)
        ]
        width = max(lengths)
        batch = len(rows)
        ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        is_prompt = torch.zeros((batch, width), dtype=torch.bool)
        mask = torch.zeros((batch, width), dtype=torch.long)
        target_ids, target_rows, target_positions = [], [], []
        for i, (row, prompt, length) in enumerate(zip(rows, row_prompts, lengths)):
            start = width - length if padding_side == "left" else 0
            p = 0 if prompt is None else prompt.shape[0]
            n_prefix = len(row.prefix_ids)
            tokens = list(row.prefix_ids) + [self.pad_id] * p + list(row.input_ids) + list(row.target_ids)
            ids[i, start:start + length] = torch.tensor(tokens, dtype=torch.long)
            is_prompt[i, start + n_prefix:start + n_prefix + p] = True
            mask[i, start:start + length] = 1
            first_target = start + length - len(row.target_ids)
            for k, tok in enumerate(row.target_ids):
                target_ids.append(tok)
                target_rows.append(i)
                target_positions.append(first_target + k - 1)  # hidden state before the token predicts it
        embeds = self._insert_prompts(self.embed(ids), is_prompt, row_prompts)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        return PromptedBatch(
            inputs_embeds=embeds,
            attention_mask=mask.to(self.device),
            position_ids=position_ids.to(self.device),
            target_ids=torch.tensor(target_ids, dtype=torch.long, device=self.device),
            target_rows=torch.tensor(target_rows, dtype=torch.long, device=self.device),
            target_positions=torch.tensor(target_positions, dtype=torch.long, device=self.device),
        )

    def _build_encoder_decoder(self, rows, row_prompts, padding_side) -> PromptedBatch:
        lengths = [(0 if p is None else p.shape[0]) + len(r.input_ids) for r, p in zip(rows, row_prompts)]
        width = max(lengths)
        batch = len(rows)
        ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        is_prompt = torch.zeros((batch, width), dtype=torch.bool)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for i, (row, prompt, length) in enumerate(zip(rows, row_prompts, lengths)):
            start = width - length if padding_side == "left" else 0
            p = 0 if prompt is None else prompt.shape[0]
            ids[i, start + p:start + length] = torch.tensor(row.input_ids, dtype=torch.long)
            is_prompt[i, start:start + p] = True
            mask[i, start:start + length] = 1
        embeds = self._insert_prompts(self.embed(ids), is_prompt, row_prompts)

        target_width = max((len(r.target_ids) for r in rows), default=0)
        start_id = self.config.decoder_start_token_id
        if start_id is None:
            start_id = self.pad_id
        decoder_ids = torch.full((batch, max(target_width, 1)), self.pad_id, dtype=torch.long)
        decoder_mask = torch.zeros_like(decoder_ids)
        target_ids, target_rows, target_positions = [], [], []
        for i, row in enumerate(rows):
            shifted = [start_id] + list(row.target_ids[:-1]) if row.target_ids else [start_id]
            decoder_ids[i, :len(shifted)] = torch.tensor(shifted, dtype=torch.long)
            decoder_mask[i, :len(shifted)] = 1
            for k, tok in enumerate(row.target_ids):
                target_ids.append(tok)
                target_rows.append(i)
                target_positions.append(k)
        dev = self.device
        return PromptedBatch(
            inputs_embeds=embeds,
            attention_mask=mask.to(dev),
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0).to(dev),
            target_ids=torch.tensor(target_ids, dtype=torch.long, device=dev),
            target_rows=torch.tensor(target_rows, dtype=torch.long, device=dev),
            target_positions=torch.tensor(target_positions, dtype=torch.long, device=dev),
            decoder_input_ids=decoder_ids.to(dev),
            decoder_attention_mask=decoder_mask.to(dev),
        )

    def _insert_prompts(self, token_embeds: Tensor, is_prompt: Tensor, row_prompts) -> Tensor:
        """Put each row's prompt rows where is_prompt is set ([batch, length, embed])."""
        present = [p for p in row_prompts if p is not None]
        if not present:
            return token_embeds
        source = torch.cat([p.to(device=self.device, dtype=token_embeds.dtype) for p in present], dim=0)
        # masked_scatter fills positions in row-major order: row 0's prompt, then row 1's, ...
        return token_embeds.masked_scatter(is_prompt.to(self.device).unsqueeze(-1), source)

    # ----------------------------------------------------------------- scoring
    def _lm_head(self, hidden: Tensor) -> Tensor:
        """hidden [..., embed] -> logits [..., vocab] in float32, with the model's own
        final scaling (Gemma 2/3 soft-capping, Cohere logit_scale, Granite logits_scaling)."""
        logits = self.model.get_output_embeddings()(hidden).float()
        cfg = self.config
        if getattr(cfg, "logit_scale", None) is not None:
            logits = logits * cfg.logit_scale
        if getattr(cfg, "logits_scaling", None) is not None:
            logits = logits / cfg.logits_scaling
        cap = getattr(cfg, "final_logit_softcapping", None)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def target_log_probs(self, batch: PromptedBatch) -> Tensor:
        """Log-probability of every target token, [n_targets] (differentiable w.r.t. prompts).

        Decoder-only models run the LM head only at the positions that predict a target
        token: on a 262k vocabulary (Gemma 3) the full-sequence head dominates a step.
        """
        if self.is_encoder_decoder:
            out = self.model(
                inputs_embeds=batch.inputs_embeds,
                attention_mask=batch.attention_mask,
                decoder_input_ids=batch.decoder_input_ids,
                decoder_attention_mask=batch.decoder_attention_mask,
                use_cache=False,
            )
            logits = out.logits[batch.target_rows, batch.target_positions].float()
        else:
            hidden = self.model.base_model(
                inputs_embeds=batch.inputs_embeds,
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids,
                use_cache=False,
            ).last_hidden_state
            logits = self._lm_head(hidden[batch.target_rows, batch.target_positions])
        return torch.log_softmax(logits, dim=-1).gather(-1, batch.target_ids[:, None]).squeeze(-1)

    def loss(self, batch: PromptedBatch) -> Tensor:
        """The text-to-text loss: mean negative log-likelihood over all target tokens."""
        return -self.target_log_probs(batch).mean()

    def sequence_log_probs(self, batch: PromptedBatch) -> Tensor:
        """Summed log-probability of each row's target, [batch]."""
        token_lp = self.target_log_probs(batch)
        totals = torch.zeros(batch.batch_size, dtype=token_lp.dtype, device=token_lp.device)
        return totals.index_add(0, batch.target_rows, token_lp)

    @torch.no_grad()
    def score_options(
        self,
        inputs: Sequence[str],
        options: Sequence[Sequence[str]],
        prompts: RowPrompts = None,
        share_prefix: bool = True,
        max_input_tokens: RowLimits = None,
    ) -> list[list[float]]:
        """Rank classification: summed log-likelihood of each option given each input.

        inputs[i] is scored against every option in options[i]; prompts is one shared
        [length, embed] prompt or one per input. Returns scores[i][j].

        The shared input is computed once per example, not once per option:
          - decoder-only, every option one token: one pass over the inputs, all options read
            from the last position's distribution;
          - decoder-only, longer options: one pass over the inputs fills a KV cache, which is
            then reused by a pass over the options' tokens only;
          - encoder-decoder: the encoder runs once per input, the decoder once per option.
        share_prefix=False scores one full (prompt, input, option) row per option, the
        straightforward reference the others are tested against.
        """
        row_prompts = _per_row_prompts(prompts, len(inputs))
        limits = _per_row_limits(max_input_tokens, len(inputs))
        encoded = [[self.encode(text, opt, max_input_tokens=limit) for opt in opts]
                   for text, opts, limit in zip(inputs, options, limits)]
        if not share_prefix:
            flat_rows = [r for rs in encoded for r in rs]
            flat_prompts = [row_prompts[i] for i, rs in enumerate(encoded) for _ in rs]
            return self._split(self.sequence_log_probs(self.build_batch(flat_rows, flat_prompts)).tolist(), encoded)
        if self.is_encoder_decoder:
            return self._score_shared_encoder(encoded, row_prompts)
        prefixes = [EncodedRow(rs[0].prefix_ids, rs[0].input_ids) for rs in encoded]
        batch = self.build_batch(prefixes, row_prompts, padding_side="left")
        single = all(len(r.target_ids) == 1 for rs in encoded for r in rs)
        out = self.model.base_model(
            inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
            position_ids=batch.position_ids, use_cache=not single,
        )
        first_lp = torch.log_softmax(self._lm_head(out.last_hidden_state[:, -1]), dim=-1)  # [batch, vocab]
        if single:
            return [[first_lp[i, r.target_ids[0]].item() for r in rs] for i, rs in enumerate(encoded)]
        return self._score_option_tails(encoded, batch, out.cache, first_lp)

    def _score_option_tails(self, encoded, prefix_batch: PromptedBatch, cache, first_lp: Tensor) -> list[list[float]]:
        """Options after a cached prefix: token 0 from the prefix's last position, token k
        from the option's own position k-1. Options are right-padded after the prefix."""
        owner = [i for i, rs in enumerate(encoded) for _ in rs]
        options = [r.target_ids for rs in encoded for r in rs]
        width = max(len(o) for o in options)
        index = torch.tensor(owner, device=self.device)
        cache.batch_select_indices(index)  # one copy of the example's cache per option
        ids = torch.full((len(options), width), self.pad_id, dtype=torch.long)
        opt_mask = torch.zeros_like(ids)
        for j, o in enumerate(options):
            ids[j, :len(o)] = torch.tensor(o)
            opt_mask[j, :len(o)] = 1
        ids, opt_mask = ids.to(self.device), opt_mask.to(self.device)
        mask = torch.cat([prefix_batch.attention_mask[index], opt_mask], dim=1)
        start = prefix_batch.position_ids[index, -1:] + 1
        positions = start + torch.arange(width, device=self.device)[None, :]
        hidden = self.model.base_model(
            inputs_embeds=self.embed(ids), attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
        ).last_hidden_state  # [n_options, width, embed]
        scores = first_lp[index, ids[:, 0]]
        if width > 1:
            rows, cols = opt_mask[:, 1:].nonzero(as_tuple=True)
            tail_lp = torch.log_softmax(self._lm_head(hidden[rows, cols]), dim=-1)
            tail_lp = tail_lp.gather(-1, ids[rows, cols + 1][:, None]).squeeze(-1)
            scores = scores.index_add(0, rows, tail_lp)
        return self._split(scores.tolist(), encoded)

    def _score_shared_encoder(self, encoded, row_prompts) -> list[list[float]]:
        from transformers.modeling_outputs import BaseModelOutput

        inputs = [EncodedRow((), rs[0].input_ids) for rs in encoded]
        enc_batch = self.build_batch(inputs, row_prompts, padding_side="right")
        hidden = self.model.get_encoder()(
            inputs_embeds=enc_batch.inputs_embeds, attention_mask=enc_batch.attention_mask,
        ).last_hidden_state
        owner = torch.tensor([i for i, rs in enumerate(encoded) for _ in rs], device=self.device)
        flat = [r for rs in encoded for r in rs]
        dec = self.build_batch([EncodedRow((), (), r.target_ids) for r in flat], None)
        logits = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden[owner]),
            attention_mask=enc_batch.attention_mask[owner],
            decoder_input_ids=dec.decoder_input_ids,
            decoder_attention_mask=dec.decoder_attention_mask,
            use_cache=False,
        ).logits[dec.target_rows, dec.target_positions].float()
        token_lp = torch.log_softmax(logits, dim=-1).gather(-1, dec.target_ids[:, None]).squeeze(-1)
        totals = torch.zeros(len(flat), device=self.device).index_add(0, dec.target_rows, token_lp)
        return self._split(totals.tolist(), encoded)

    @staticmethod
    def _split(flat_scores: list[float], encoded) -> list[list[float]]:
        out, k = [], 0
        for rs in encoded:
            out.append(flat_scores[k:k + len(rs)])
            k += len(rs)
        return out

    @torch.no_grad()
    def generate(
        self,
        inputs: Sequence[str],
        prompts: RowPrompts = None,
        max_new_tokens: int = 32,
        max_input_tokens: RowLimits = None,
    ) -> list[str]:
        """Greedy decoding with a KV cache; each row may carry its own prompt (and truncation)."""
        row_prompts = _per_row_prompts(prompts, len(inputs))
        rows = [self.encode(text, max_input_tokens=limit)
                for text, limit in zip(inputs, _per_row_limits(max_input_tokens, len(inputs)))]
        batch = self.build_batch(rows, row_prompts, padding_side="left")
        if self.is_encoder_decoder:
            out = self.model.generate(
                inputs_embeds=batch.inputs_embeds,
                attention_mask=batch.attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
            )
            return [s.strip() for s in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

        base = self.model.base_model
        mask = batch.attention_mask
        positions = batch.position_ids
        out = base(inputs_embeds=batch.inputs_embeds, attention_mask=mask, position_ids=positions, use_cache=True)
        cache = out.cache
        next_pos = positions[:, -1:] + 1
        finished = torch.zeros(len(rows), dtype=torch.bool, device=self.device)
        generated: list[list[int]] = [[] for _ in rows]
        hidden = out.last_hidden_state[:, -1]
        for _ in range(max_new_tokens):
            next_ids = self._lm_head(hidden).argmax(-1)
            for i, tok in enumerate(next_ids.tolist()):
                if not finished[i]:
                    if tok == self.eos_id:
                        finished[i] = True
                    else:
                        generated[i].append(tok)
            if bool(finished.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            out = base(
                inputs_embeds=self.embed(next_ids[:, None]),
                attention_mask=mask,
                position_ids=next_pos,
                cache=cache,
                use_cache=True,
            )
            cache = out.cache
            next_pos = next_pos + 1
            hidden = out.last_hidden_state[:, -1]
        return [self.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in generated]

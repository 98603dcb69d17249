"""Batching: text -> token rows -> one padded batch with each row's soft prompt in place.

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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import torch
from torch import Tensor

from softprompt.errors import MismatchedArgumentsError

if TYPE_CHECKING:
    from softprompt.core.model import PromptedLM

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


def per_row_prompts(prompts: RowPrompts, batch_size: int) -> list[Tensor | None]:
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


def per_row_limits(limits: RowLimits, count: int, unit: str = "rows") -> list[int | None]:
    """One input truncation per row (or per prompt, ...): the same for all (an int or None), or
    one each."""
    if limits is None or isinstance(limits, int):
        return [limits] * count
    limits = list(limits)
    if len(limits) != count:
        raise MismatchedArgumentsError(f"{len(limits)} input limits for {count} {unit}")
    return limits


# ----------------------------------------------------------------- tokenising
def encode(
    lm: PromptedLM,
    text: str,
    target: str | None = None,
    add_eos: bool = False,
    max_input_tokens: int | None = None,
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
    tok = lm.tokenizer
    limit = lm.max_input_tokens if max_input_tokens is None else max_input_tokens
    if lm.is_encoder_decoder:
        input_ids = tok(text).input_ids
        if len(input_ids) > limit:
            input_ids = input_ids[-limit:]
        return EncodedRow((), tuple(input_ids), tuple(tok(target).input_ids if target is not None else ()))

    alone = tok(text).input_ids
    prefix, ids = [], alone
    if ids and tok.bos_token_id is not None and ids[0] == tok.bos_token_id:
        prefix, ids = ids[:1], ids[1:]
    target_ids: list[int] = []
    if target is not None:
        target_ids = _target_ids(lm, text, target, alone)
        if add_eos and lm.eos_id is not None:
            target_ids.append(lm.eos_id)
    if len(ids) > limit:
        ids = ids[-limit:]
    return EncodedRow(tuple(prefix), tuple(ids), tuple(target_ids))


def _target_ids(lm: PromptedLM, text: str, target: str, alone: list[int]) -> list[int]:
    joint = lm.tokenizer(text + " " + target).input_ids
    if joint[: len(alone)] == alone and len(joint) > len(alone):
        return joint[len(alone) :]
    return lm.tokenizer(" " + target, add_special_tokens=False).input_ids


# ----------------------------------------------------------------- batching
# A forward and backward pass costs about this many tokens' compute beyond its tokens (the
# per-layer work that does not grow with the batch), on a CPU; benchmarks/length_bands.md.
BAND_OVERHEAD_TOKENS = 32


def length_bands(lengths: Sequence[int], overhead_tokens: int = BAND_OVERHEAD_TOKENS) -> list[list[int]]:
    """Cut rows into bands of similar length that cost the fewest computed tokens in all.

    A padded batch computes (rows x longest row) tokens. Sorted by length and cut into
    contiguous bands, it computes sum over bands of (rows x longest row in the band), plus
    `overhead_tokens` for each extra pass. The cut points are found exactly (dynamic programming
    over the sorted lengths, O(n^2) for n rows). Returns the row indices of each band, shortest
    band first; rows of one length keep their order. One band (the whole batch) when no cut
    pays for its pass.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    sorted_lengths = [lengths[i] for i in order]
    n = len(order)
    # cost[j]: fewest tokens for the j shortest rows; cut[j]: where the last band starts
    cost = [0] * (n + 1)
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        cost[j], cut[j] = min((cost[i] + (j - i) * sorted_lengths[j - 1] + (overhead_tokens if i else 0), i)
                              for i in range(j))
    bands: list[list[int]] = []
    j = n
    while j > 0:
        bands.append(order[cut[j]:j])
        j = cut[j]
    return bands[::-1]


def row_length(row: EncodedRow, prompt_length: int = 0) -> int:
    """Tokens a row holds once its prompt is in (encoder and decoder sides together)."""
    return len(row.prefix_ids) + prompt_length + len(row.input_ids) + len(row.target_ids)


def row_bands(rows: Sequence[EncodedRow], prompt_length: int, in_bands: bool) -> list[list[int]]:
    """The bands a batch of rows is computed in (row indices): their length bands with the prompt
    in, or one band of every row."""
    if not in_bands:
        return [list(range(len(rows)))]
    return length_bands([row_length(row, prompt_length) for row in rows])


def build_batch(
    lm: PromptedLM,
    rows: Sequence[EncodedRow],
    prompts: RowPrompts = None,
    padding_side: PaddingSide = "left",
) -> PromptedBatch:
    """Pad rows into one batch, each with its own prompt ([length, embed] or None)."""
    row_prompts = per_row_prompts(prompts, len(rows))
    if lm.is_encoder_decoder:
        return _build_encoder_decoder(lm, rows, row_prompts, padding_side)
    return _build_decoder_only(lm, rows, row_prompts, padding_side)


def _build_decoder_only(lm: PromptedLM, rows, row_prompts, padding_side) -> PromptedBatch:
    lengths = [
        len(r.prefix_ids) + (0 if p is None else p.shape[0]) + len(r.input_ids) + len(r.target_ids)
        for r, p in zip(rows, row_prompts)
    ]
    width = max(lengths)
    batch = len(rows)
    ids = torch.full((batch, width), lm.pad_id, dtype=torch.long)
    is_prompt = torch.zeros((batch, width), dtype=torch.bool)
    mask = torch.zeros((batch, width), dtype=torch.long)
    target_ids, target_rows, target_positions = [], [], []
    for i, (row, prompt, length) in enumerate(zip(rows, row_prompts, lengths)):
        start = width - length if padding_side == "left" else 0
        p = 0 if prompt is None else prompt.shape[0]
        n_prefix = len(row.prefix_ids)
        tokens = list(row.prefix_ids) + [lm.pad_id] * p + list(row.input_ids) + list(row.target_ids)
        ids[i, start : start + length] = torch.tensor(tokens, dtype=torch.long)
        is_prompt[i, start + n_prefix : start + n_prefix + p] = True
        mask[i, start : start + length] = 1
        first_target = start + length - len(row.target_ids)
        for k, tok in enumerate(row.target_ids):
            target_ids.append(tok)
            target_rows.append(i)
            target_positions.append(first_target + k - 1)  # hidden state before the token predicts it
    embeds = _insert_prompts(lm, lm.embed(ids), is_prompt, row_prompts)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return PromptedBatch(
        inputs_embeds=embeds,
        attention_mask=mask.to(lm.device),
        position_ids=position_ids.to(lm.device),
        target_ids=torch.tensor(target_ids, dtype=torch.long, device=lm.device),
        target_rows=torch.tensor(target_rows, dtype=torch.long, device=lm.device),
        target_positions=torch.tensor(target_positions, dtype=torch.long, device=lm.device),
    )


def _build_encoder_decoder(lm: PromptedLM, rows, row_prompts, padding_side) -> PromptedBatch:
    lengths = [(0 if p is None else p.shape[0]) + len(r.input_ids) for r, p in zip(rows, row_prompts)]
    width = max(lengths)
    batch = len(rows)
    ids = torch.full((batch, width), lm.pad_id, dtype=torch.long)
    is_prompt = torch.zeros((batch, width), dtype=torch.bool)
    mask = torch.zeros((batch, width), dtype=torch.long)
    for i, (row, prompt, length) in enumerate(zip(rows, row_prompts, lengths)):
        start = width - length if padding_side == "left" else 0
        p = 0 if prompt is None else prompt.shape[0]
        ids[i, start + p : start + length] = torch.tensor(row.input_ids, dtype=torch.long)
        is_prompt[i, start : start + p] = True
        mask[i, start : start + length] = 1
    embeds = _insert_prompts(lm, lm.embed(ids), is_prompt, row_prompts)

    target_width = max((len(r.target_ids) for r in rows), default=0)
    start_id = lm.config.decoder_start_token_id
    if start_id is None:
        start_id = lm.pad_id
    decoder_ids = torch.full((batch, max(target_width, 1)), lm.pad_id, dtype=torch.long)
    decoder_mask = torch.zeros_like(decoder_ids)
    target_ids, target_rows, target_positions = [], [], []
    for i, row in enumerate(rows):
        shifted = [start_id] + list(row.target_ids[:-1]) if row.target_ids else [start_id]
        decoder_ids[i, : len(shifted)] = torch.tensor(shifted, dtype=torch.long)
        decoder_mask[i, : len(shifted)] = 1
        for k, tok in enumerate(row.target_ids):
            target_ids.append(tok)
            target_rows.append(i)
            target_positions.append(k)
    dev = lm.device
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


def _insert_prompts(lm: PromptedLM, token_embeds: Tensor, is_prompt: Tensor, row_prompts) -> Tensor:
    """Put each row's prompt rows where is_prompt is set ([batch, length, embed])."""
    present = [p for p in row_prompts if p is not None]
    if not present:
        return token_embeds
    source = torch.cat([p.to(device=lm.device, dtype=token_embeds.dtype) for p in present], dim=0)
    # masked_scatter fills positions in row-major order: row 0's prompt, then row 1's, ...
    return token_embeds.masked_scatter(is_prompt.to(lm.device).unsqueeze(-1), source)

"""Scoring: log-likelihoods of target tokens, the training loss, and rank classification.

Decoder-only models run the LM head only where a target token is predicted; rank
classification computes each input once and reads every option from it (a shared prefix).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
from torch import Tensor

from softprompt.core.batching import (
    EncodedRow,
    PromptedBatch,
    RowLimits,
    RowPrompts,
    build_batch,
    encode,
    per_row_limits,
    per_row_prompts,
    row_bands,
)

if TYPE_CHECKING:
    from softprompt.core.model import PromptedLM


def best_option(scores: Sequence[float]) -> int:
    """Rank classification's decision: the index of the highest-scoring option (the first on a tie)."""
    if not scores:
        raise ValueError("no option scores to choose from")
    return max(range(len(scores)), key=scores.__getitem__)


def lm_head(lm: PromptedLM, hidden: Tensor) -> Tensor:
    """hidden [..., embed] -> logits [..., vocab] in float32, with the model's own
    final scaling (Gemma 2/3 soft-capping, Cohere logit_scale, Granite logits_scaling)."""
    logits = lm.model.get_output_embeddings()(hidden).float()
    cfg = lm.config
    if getattr(cfg, "logit_scale", None) is not None:
        logits = logits * cfg.logit_scale
    if getattr(cfg, "logits_scaling", None) is not None:
        logits = logits / cfg.logits_scaling
    cap = getattr(cfg, "final_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits


def target_logits(lm: PromptedLM, batch: PromptedBatch) -> Tensor:
    """Float32 logits at every position that predicts a target token, [n_targets, vocab]
    (differentiable w.r.t. prompts), in the order of batch.target_rows / target_ids.

    Decoder-only models run the LM head only at those positions: on a 262k vocabulary
    (Gemma 3) the full-sequence head dominates a step.
    """
    if lm.is_encoder_decoder:
        out = lm.model(
            inputs_embeds=batch.inputs_embeds,
            attention_mask=batch.attention_mask,
            decoder_input_ids=batch.decoder_input_ids,
            decoder_attention_mask=batch.decoder_attention_mask,
            use_cache=False,
        )
        return out.logits[batch.target_rows, batch.target_positions].float()
    hidden = lm.model.base_model(
        inputs_embeds=batch.inputs_embeds,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        use_cache=False,
    ).last_hidden_state
    return lm_head(lm, hidden[batch.target_rows, batch.target_positions])


def target_log_probs(lm: PromptedLM, batch: PromptedBatch) -> Tensor:
    """Log-probability of every target token, [n_targets] (differentiable w.r.t. prompts)."""
    logits = target_logits(lm, batch)
    return torch.log_softmax(logits, dim=-1).gather(-1, batch.target_ids[:, None]).squeeze(-1)


def loss(lm: PromptedLM, batch: PromptedBatch) -> Tensor:
    """The text-to-text loss: mean negative log-likelihood over all target tokens."""
    return -target_log_probs(lm, batch).mean()


def summed_nll_in_bands(lm: PromptedLM, rows: Sequence[EncodedRow], prompt: Tensor | None,
                        bands: Sequence[Sequence[int]]) -> Tensor:
    """The NLL of every row's target tokens, summed (a scalar), computed one padded pass per band of
    rows (row indices; batching.length_bands): with the target-token count, the mean `loss` of one
    padded pass of all the rows, less padding computed."""
    return torch.stack([-target_log_probs(lm, build_batch(lm, [rows[i] for i in band], prompt)).sum()
                        for band in bands]).sum()


def mean_nll(lm: PromptedLM, rows: Sequence[EncodedRow], prompt: Tensor | None,
             bands: Sequence[Sequence[int]]) -> Tensor:
    """The text-to-text loss of rows (the mean target-token NLL) computed in `bands`: one band is
    one padded pass (`loss`), more are summed_nll_in_bands over the target-token count, the same
    value to float rounding."""
    if len(bands) == 1:  # through the model adapter's own batch and loss, as before bands
        return lm.loss(lm.build_batch(rows, prompt))
    return summed_nll_in_bands(lm, rows, prompt, bands) / sum(len(row.target_ids) for row in rows)


def sequence_log_probs(lm: PromptedLM, batch: PromptedBatch) -> Tensor:
    """Summed log-probability of each row's target, [batch]."""
    token_lp = target_log_probs(lm, batch)
    totals = torch.zeros(batch.batch_size, dtype=token_lp.dtype, device=token_lp.device)
    return totals.index_add(0, batch.target_rows, token_lp)


def choice_loss(lm: PromptedLM, rows: Sequence[Sequence[EncodedRow]], answers: Sequence[int], prompt: Tensor,
                in_bands: bool = False) -> Tensor:
    """The rank-classification loss, summed over examples (differentiable w.r.t. the prompt).

    rows[i]: example i's input encoded with each of its options as target; answers[i]: the index
    of the gold option. Each option is scored as evaluation ranks it (the summed log-likelihood
    of its tokens), and the loss is the cross-entropy of the gold option among them: it trains
    the choice itself, where the text-to-text loss also rewards likelier wording of the gold
    continuation (COPA's options are whole clauses).

    Decoder-only, every option one token (label words): one row per example, every option read
    from the distribution at its answer position, as evaluation does; otherwise one full row per
    option. in_bands: the rows are computed one padded pass per length band (batching.length_bands).
    """
    single = not lm.is_encoder_decoder and all(len(r.target_ids) == 1 for rs in rows for r in rs)
    run = [rs[0] for rs in rows] if single else [r for rs in rows for r in rs]
    bands = row_bands(run, prompt.shape[0], in_bands)
    # single: each run row's log-distribution at its answer position, [vocab]; else its option's score
    out: list[Tensor] = [prompt.new_zeros(())] * len(run)
    for band in bands:
        batch = build_batch(lm, [run[i] for i in band], prompt)
        band_out = (torch.log_softmax(target_logits(lm, batch), dim=-1) if single  # one target per row
                    else sequence_log_probs(lm, batch))
        for j, i in enumerate(band):
            out[i] = band_out[j]
    total = prompt.new_zeros((), dtype=torch.float32)
    first = 0  # of example i's option rows in `run` (one full row per option)
    for i, (rs, answer) in enumerate(zip(rows, answers)):
        if single:
            own = out[i][torch.tensor([r.target_ids[0] for r in rs], device=out[i].device)]
        else:
            own = torch.stack(out[first:first + len(rs)])
            first += len(rs)
        total = total + torch.logsumexp(own, 0) - own[answer]
    return total


@torch.no_grad()
def score_options(
    lm: PromptedLM,
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
    row_prompts = per_row_prompts(prompts, len(inputs))
    limits = per_row_limits(max_input_tokens, len(inputs))
    encoded = [
        [encode(lm, text, opt, max_input_tokens=limit) for opt in opts]
        for text, opts, limit in zip(inputs, options, limits)
    ]
    if not share_prefix:
        flat_rows = [r for rs in encoded for r in rs]
        flat_prompts = [row_prompts[i] for i, rs in enumerate(encoded) for _ in rs]
        return _split(sequence_log_probs(lm, build_batch(lm, flat_rows, flat_prompts)).tolist(), encoded)
    if lm.is_encoder_decoder:
        return _score_shared_encoder(lm, encoded, row_prompts)
    prefixes = [EncodedRow(rs[0].prefix_ids, rs[0].input_ids) for rs in encoded]
    batch = build_batch(lm, prefixes, row_prompts, padding_side="left")
    single = all(len(r.target_ids) == 1 for rs in encoded for r in rs)
    out = lm.model.base_model(
        inputs_embeds=batch.inputs_embeds,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        use_cache=not single,
    )
    first_lp = torch.log_softmax(lm_head(lm, out.last_hidden_state[:, -1]), dim=-1)  # [batch, vocab]
    if single:
        return [[first_lp[i, r.target_ids[0]].item() for r in rs] for i, rs in enumerate(encoded)]
    return _score_option_tails(lm, encoded, batch, out.cache, first_lp)


def _score_option_tails(
    lm: PromptedLM, encoded, prefix_batch: PromptedBatch, cache, first_lp: Tensor
) -> list[list[float]]:
    """Options after a cached prefix: token 0 from the prefix's last position, token k
    from the option's own position k-1. Options are right-padded after the prefix."""
    owner = [i for i, rs in enumerate(encoded) for _ in rs]
    options = [r.target_ids for rs in encoded for r in rs]
    width = max(len(o) for o in options)
    index = torch.tensor(owner, device=lm.device)
    cache.batch_select_indices(index)  # one copy of the example's cache per option
    ids = torch.full((len(options), width), lm.pad_id, dtype=torch.long)
    opt_mask = torch.zeros_like(ids)
    for j, o in enumerate(options):
        ids[j, : len(o)] = torch.tensor(o)
        opt_mask[j, : len(o)] = 1
    ids, opt_mask = ids.to(lm.device), opt_mask.to(lm.device)
    mask = torch.cat([prefix_batch.attention_mask[index], opt_mask], dim=1)
    start = prefix_batch.position_ids[index, -1:] + 1
    positions = start + torch.arange(width, device=lm.device)[None, :]
    hidden = lm.model.base_model(
        inputs_embeds=lm.embed(ids),
        attention_mask=mask,
        position_ids=positions,
        cache=cache,
        use_cache=True,
    ).last_hidden_state  # [n_options, width, embed]
    scores = first_lp[index, ids[:, 0]]
    if width > 1:
        rows, cols = opt_mask[:, 1:].nonzero(as_tuple=True)
        tail_lp = torch.log_softmax(lm_head(lm, hidden[rows, cols]), dim=-1)
        tail_lp = tail_lp.gather(-1, ids[rows, cols + 1][:, None]).squeeze(-1)
        scores = scores.index_add(0, rows, tail_lp)
    return _split(scores.tolist(), encoded)


def _score_shared_encoder(lm: PromptedLM, encoded, row_prompts) -> list[list[float]]:
    from transformers.modeling_outputs import BaseModelOutput

    inputs = [EncodedRow((), rs[0].input_ids) for rs in encoded]
    enc_batch = build_batch(lm, inputs, row_prompts, padding_side="right")
    hidden = lm.model.get_encoder()(
        inputs_embeds=enc_batch.inputs_embeds,
        attention_mask=enc_batch.attention_mask,
    ).last_hidden_state
    owner = torch.tensor([i for i, rs in enumerate(encoded) for _ in rs], device=lm.device)
    flat = [r for rs in encoded for r in rs]
    dec = build_batch(lm, [EncodedRow((), (), r.target_ids) for r in flat], None)
    logits = (
        lm.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden[owner]),
            attention_mask=enc_batch.attention_mask[owner],
            decoder_input_ids=dec.decoder_input_ids,
            decoder_attention_mask=dec.decoder_attention_mask,
            use_cache=False,
        )
        .logits[dec.target_rows, dec.target_positions]
        .float()
    )
    token_lp = torch.log_softmax(logits, dim=-1).gather(-1, dec.target_ids[:, None]).squeeze(-1)
    totals = torch.zeros(len(flat), device=lm.device).index_add(0, dec.target_rows, token_lp)
    return _split(totals.tolist(), encoded)


def _split(flat_scores: list[float], encoded) -> list[list[float]]:
    out, k = [], 0
    for rs in encoded:
        out.append(flat_scores[k : k + len(rs)])
        k += len(rs)
    return out

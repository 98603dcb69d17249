"""Greedy generation with a KV cache, each row with its own prompt and truncation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from softprompt.core.batching import (
    RowLimits,
    RowPrompts,
    build_batch,
    encode,
    per_row_limits,
    per_row_prompts,
)
from softprompt.core.scoring import lm_head

if TYPE_CHECKING:
    from softprompt.core.model import PromptedLM


@torch.no_grad()
def generate(
    lm: PromptedLM,
    inputs: Sequence[str],
    prompts: RowPrompts = None,
    max_new_tokens: int = 32,
    max_input_tokens: RowLimits = None,
) -> list[str]:
    """Greedy decoding with a KV cache; each row may carry its own prompt (and truncation)."""
    row_prompts = per_row_prompts(prompts, len(inputs))
    rows = [
        encode(lm, text, max_input_tokens=limit)
        for text, limit in zip(inputs, per_row_limits(max_input_tokens, len(inputs)))
    ]
    batch = build_batch(lm, rows, row_prompts, padding_side="left")
    if lm.is_encoder_decoder:
        out = lm.model.generate(
            inputs_embeds=batch.inputs_embeds,
            attention_mask=batch.attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
        )
        return [s.strip() for s in lm.tokenizer.batch_decode(out, skip_special_tokens=True)]

    base = lm.model.base_model
    mask = batch.attention_mask
    positions = batch.position_ids
    out = base(inputs_embeds=batch.inputs_embeds, attention_mask=mask, position_ids=positions, use_cache=True)
    cache = out.cache
    next_pos = positions[:, -1:] + 1
    finished = torch.zeros(len(rows), dtype=torch.bool, device=lm.device)
    generated: list[list[int]] = [[] for _ in rows]
    hidden = out.last_hidden_state[:, -1]
    for _ in range(max_new_tokens):
        next_ids = lm_head(lm, hidden).argmax(-1)
        for i, tok in enumerate(next_ids.tolist()):
            if not finished[i]:
                if tok == lm.eos_id:
                    finished[i] = True
                else:
                    generated[i].append(tok)
        if bool(finished.all()):
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out = base(
            inputs_embeds=lm.embed(next_ids[:, None]),
            attention_mask=mask,
            position_ids=next_pos,
            cache=cache,
            use_cache=True,
        )
        cache = out.cache
        next_pos = next_pos + 1
        hidden = out.last_hidden_state[:, -1]
    return [lm.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in generated]

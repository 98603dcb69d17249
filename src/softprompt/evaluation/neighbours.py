"""What a prompt learned: each prompt row's nearest vocabulary tokens by cosine similarity."""
from __future__ import annotations

import torch
from torch import Tensor

from softprompt.core.model import PromptedLM


@torch.no_grad()
def nearest_tokens(lm: PromptedLM, prompt: Tensor, k: int = 5, chunk: int = 8192) -> list[list[tuple[str, float]]]:
    """For each row of prompt [length, embed], the k closest tokens as (token, cosine).

    Cosine is scale-invariant, so the raw embedding matrix serves even for models that scale
    embeddings inside their embedding module (Gemma).
    """
    weight = lm.input_embeddings.weight
    rows = torch.nn.functional.normalize(prompt.to(weight.device).float(), dim=-1)
    best_scores = torch.full((rows.shape[0], k), -2.0, device=weight.device)
    best_ids = torch.zeros((rows.shape[0], k), dtype=torch.long, device=weight.device)
    for start in range(0, weight.shape[0], chunk):
        block = torch.nn.functional.normalize(weight[start:start + chunk].float(), dim=-1)
        sims = rows @ block.T
        scores = torch.cat([best_scores, sims], dim=1)
        ids = torch.cat([best_ids, torch.arange(start, start + block.shape[0], device=weight.device).expand(rows.shape[0], -1)], dim=1)
        best_scores, order = scores.topk(k, dim=1)
        best_ids = ids.gather(1, order)
    out = []
    for ids, scores in zip(best_ids.tolist(), best_scores.tolist()):
        tokens = lm.tokenizer.convert_ids_to_tokens(ids)
        out.append([(lm.tokenizer.convert_tokens_to_string([t]) if t is not None else "?", s) for t, s in zip(tokens, scores)])
    return out

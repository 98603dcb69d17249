"""Residual reparameterization of the soft prompt (Razdaibiedina et al. 2023, "Residual Prompt Tuning").

During training the prompt the model reads is

    P' = P + LN(W_up relu(W_down P))          P, P': [length, embed]; W_down: [hidden, embed]

a shallow bottleneck network shared by every row, with a residual connection and a LayerNorm. The
shared network couples the rows: a gradient on one row moves the weights every row goes through, so
the prompt can move together rather than row by row. After training the network is dropped and P'
is the prompt: a prompt file holds P' alone, and evaluation, serving and export are unchanged.

Two departures from the paper, both for the lr rule (training.defaults), which sizes every step to
the spread of the model's embeddings:
  * the LayerNorm's gain starts at zero, so P' = P at the start (the chosen init, class-label by
    default, is what the first update sees) and the network's contribution grows at the prompt's
    own step size; the paper's gain 1 would add a unit-variance row to embeddings whose spread is
    0.12 (SmolLM2) to 1.03 (Gemma 3);
  * the two weight matrices take relative steps (`RELATIVE_PARAMETERS`: the optimizer scales their
    steps by each matrix's RMS, training.trainer.make_optimizer), because an embedding-sized step
    means something else for a [hidden, embed] matrix initialised at 1/sqrt(fan_in).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# parameters whose optimizer steps are relative to their own RMS (see the module docstring)
RELATIVE_PARAMETERS = ("down.weight", "up.weight")


class ResidualReparameterization(nn.Module):
    """P -> P + LN(W_up relu(W_down P)), rows independent; starts as the identity (LN gain 0)."""

    def __init__(self, embed_dim: int, hidden: int, seed: int = 0):
        super().__init__()
        self.down = nn.Linear(embed_dim, hidden, bias=False)
        self.up = nn.Linear(hidden, embed_dim, bias=False)
        self.norm = nn.LayerNorm(embed_dim)
        generator = torch.Generator().manual_seed(seed)  # the same network on every rank and every rerun
        with torch.no_grad():
            for layer in (self.down, self.up):
                bound = 1.0 / math.sqrt(layer.in_features)
                layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound)
            self.norm.weight.zero_()
            self.norm.bias.zero_()

    def forward(self, prompt: Tensor) -> Tensor:
        """prompt: [length, embed] -> [length, embed]."""
        return prompt + self.norm(self.up(torch.relu(self.down(prompt))))

"""The training order: which examples each update draws.

Epoch e is a permutation seeded by (seed, e), so the k-th example drawn is a pure function of
(seed, k): a resumed run, a model-tuning baseline with the same seed, and every rank of a
distributed run see the same data.

Length grouping (TrainConfig.group_by_length, off by default): a batch is padded to its longest row, and on tasks whose inputs
vary in length a random batch spends much of its compute on padding (benchmarks/padding.md
has the ratios per task and model). So each epoch's permutation is cut into pools of
LENGTH_GROUP_BATCHES batches; each pool is sorted by token count, cut into batches, and its
batches are shuffled. Every batch holds rows of similar length, every example still comes once
per epoch, and which lengths come when stays random (Hugging Face Trainer's `group_by_length`,
with the batch order inside a pool shuffled too). Lengths are counted only for the pools a run
reaches, so a short run on a large train split tokenises only what it draws. Not the default:
in paired runs it scored lower (reports/results.md), plausibly because each update's gradient then
comes from one length band.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from softprompt.core.batching import row_length
from softprompt.core.model import PromptedLM
from softprompt.errors import SoftPromptError
from softprompt.tasks.base import Example

# Batches per sorted pool: larger pools pad less, smaller ones keep batches more varied.
LENGTH_GROUP_BATCHES = 50

LengthFn = Callable[[Example], int]


def example_length(example: Example) -> int:
    """Characters of input and target: a model-free length (digits and rare words make it a
    rough proxy for tokens, so training uses `token_length`)."""
    return len(example.input) + len(example.target)


def token_length(lm: PromptedLM, max_input_tokens: int, add_eos: bool = False) -> LengthFn:
    """A row's token count as the training loop encodes it (the prompt adds the same to every row)."""

    def length(example: Example) -> int:
        return row_length(lm.encode(example.input, example.target, add_eos=add_eos, max_input_tokens=max_input_tokens))

    return length


class ExampleStream:
    """The k-th training example of a run: `take(start, count)`.

    batch_size given: length-grouped batches (by `length`), aligned so that every block of
    batch_size consecutive draws starting at a multiple of batch_size is one group (the examples of
    one optimizer update); None: a plain permutation per epoch.
    """

    def __init__(self, examples: Sequence[Example], seed: int, batch_size: int | None = None,
                 length: LengthFn = example_length):
        if not examples:
            raise SoftPromptError("no training examples")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.examples = examples
        self.seed = seed
        self.batch_size = batch_size
        self._length = length
        self._lengths: dict[int, int] = {}  # example index -> length, counted once
        self._epoch = -1
        self._order: list[int] = []
        self._head = 0
        self._pools: dict[int, list[int]] = {}
        self._gen = torch.Generator()

    def take(self, start: int, count: int) -> list[Example]:
        out = []
        for k in range(start, start + count):
            epoch, pos = divmod(k, len(self.examples))
            out.append(self.examples[self._index(epoch, pos)])
        return out

    def _index(self, epoch: int, pos: int) -> int:
        if epoch != self._epoch:
            self._start_epoch(epoch)
        if not self.batch_size or pos < self._head:
            return self._order[pos]
        pool_size = self.batch_size * LENGTH_GROUP_BATCHES
        pool, offset = divmod(pos - self._head, pool_size)
        if pool not in self._pools:
            self._pools[pool] = self._grouped_pool(epoch, pool, pool_size)
        return self._pools[pool][offset]

    def _start_epoch(self, epoch: int) -> None:
        n = len(self.examples)
        self._gen.manual_seed(self.seed * 1_000_003 + epoch)
        self._order = torch.randperm(n, generator=self._gen).tolist()
        self._epoch = epoch
        self._pools = {}
        # Updates start at global draws k = 0, size, 2 size, ...; epoch e starts at draw e * n,
        # so its first `head` rows finish an update begun in the previous epoch (drawn as they come).
        self._head = (-epoch * n) % self.batch_size if self.batch_size else 0

    def _grouped_pool(self, epoch: int, pool: int, pool_size: int) -> list[int]:
        assert self.batch_size is not None
        size = self.batch_size
        first = self._head + pool * pool_size
        members = self._order[first:first + pool_size]
        for j in members:
            if j not in self._lengths:
                self._lengths[j] = self._length(self.examples[j])
        ordered = sorted(members, key=lambda j: self._lengths[j])  # stable: ties keep the permutation
        batches = [ordered[b:b + size] for b in range(0, len(ordered), size)]
        # a short last piece (the epoch's end) starts an update the next epoch finishes: it stays last
        tail = batches.pop() if len(batches[-1]) < size else []
        gen = torch.Generator().manual_seed(((self.seed * 1_000_003 + epoch) * 1_000_033 + pool) % 2**63)
        shuffled = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
        return [j for batch in shuffled for j in batch] + tail

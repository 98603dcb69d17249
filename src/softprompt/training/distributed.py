"""Training on many processes with torch.distributed (torchrun, accelerate launch).

Data parallel: every rank draws the same global micro-batch from the seeded example stream
and keeps its share (rows rank, rank + N, ...). Each rank divides its summed target-token
NLL by the global micro-batch's token count, so the gradients summed over ranks (one
all-reduce of the prompt's gradient per update) are exactly the single process's gradient of
the mean loss. The frozen model is never communicated; only the prompt's gradient, the loss
and a token count are. Rank 0 alone writes files; what other ranks need from disk (a resumed
checkpoint, the best prompt) rank 0 reads and broadcasts, so nodes need no shared folder.

Sharded model (--fsdp): torch's fully_shard (FSDP2) on the frozen model's repeated blocks, so
each rank holds 1/N of their weights; the prompt stays a plain replicated tensor.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from softprompt.core.loading import resolve_device
from softprompt.core.model import PromptedLM
from softprompt.errors import SoftPromptError
from softprompt.evaluation.evaluator import EvalResult, evaluate, predict
from softprompt.tasks.base import Example, Task

T = TypeVar("T")
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# what mpirun sets (accelerate's multi-CPU launch goes through it); torch's env:// needs the above
MPI_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


class DistributedError(SoftPromptError):
    """The process group is missing, misconfigured, or a rank failed."""


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the training processes (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share of a global batch: items rank, rank + N, ... (shares differ by at most one)."""
        return list(items[self.rank::self.world_size])

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place (every rank gets the same result)."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's values, in place."""
        if self.enabled:
            dist.broadcast(tensor, src=0)
        return tensor

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's obj, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def run_on_main(self, fn: Callable[[], T]) -> T:
        """fn() run on rank 0 only (it reads or writes the run folder), its result sent to every
        rank. An error there is raised on every rank, so none waits forever for a failed one."""
        if not self.enabled:
            return fn()
        box: list[Any] = [None]
        error: BaseException | None = None
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except Exception as err:  # raised on every rank below
                error = err
                box[0] = ("error", f"{type(err).__name__}: {err}")
        dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            if error is not None:
                raise error
            raise DistributedError(f"rank 0 failed: {value}")
        return value

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def world_size_from_env() -> int:
    """WORLD_SIZE as torchrun / accelerate launch set it (1 when unset). A process started as one
    of several by mpirun, which sets no WORLD_SIZE, is an error: alone it would train alone."""
    if "WORLD_SIZE" not in os.environ:
        for var in MPI_SIZE_VARS:
            if os.environ.get(var, "1").isdigit() and int(os.environ.get(var, "1")) > 1:
                raise DistributedError(f"{var}={os.environ[var]}: started by mpirun as one of several processes, "
                                       "but softprompt joins torchrun's process group (RANK, WORLD_SIZE, "
                                       "MASTER_ADDR, MASTER_PORT): launch with torchrun --nproc_per_node N")
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise DistributedError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None


def current() -> ProcessGroup:
    """The process group this process trains in. A launcher that set WORLD_SIZE > 1 without an
    initialised group is an error, not N independent runs racing on one folder."""
    world = world_size_from_env()
    if dist.is_available() and dist.is_initialized():
        if "WORLD_SIZE" in os.environ and dist.get_world_size() != world:
            raise DistributedError(f"WORLD_SIZE={world} but the process group has {dist.get_world_size()} processes")
        return ProcessGroup(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1:
        raise DistributedError(
            f"WORLD_SIZE={world}: this process was launched as one of {world}, but no torch.distributed process "
            "group is initialised, so it would train alone. Call softprompt.training.distributed.init_from_env() "
            "before training (the CLI does), or launch a single process."
        )
    return ProcessGroup()


def init_from_env(device: str = "auto", timeout_s: float | None = None) -> tuple[ProcessGroup, str]:
    """Join the process group a launcher describes in the environment (torchrun and accelerate
    launch set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): gloo on a CPU, nccl on
    CUDA. Returns the group and this rank's device (CUDA: cuda:LOCAL_RANK). No launcher: a
    single process and `device` unchanged."""
    world = world_size_from_env()
    if world <= 1:
        if os.environ.get("ACCELERATE_USE_CPU") and "WORLD_SIZE" not in os.environ:
            # accelerate launch --cpu starts one process whatever --num_processes says
            warnings.warn("accelerate launch --cpu started a single process; for several CPU processes use "
                          "torchrun --nproc_per_node N (or accelerate launch --multi_gpu ... --device cpu)",
                          stacklevel=2)
        return current(), device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch_device = resolve_device(device)
    if torch_device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} GPU(s): "
                                   "launch at most one process per GPU (--nproc_per_node)")
        if torch_device.index is None or device in ("auto", "cuda"):
            torch_device = torch.device("cuda", local_rank)
        torch.cuda.set_device(torch_device)
    if not dist.is_initialized():
        missing = [v for v in LAUNCH_VARS if v not in os.environ and v != "LOCAL_RANK"]
        if missing:
            raise DistributedError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: launch with torchrun "
                                   "or accelerate launch")
        backend = "nccl" if torch_device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"timeout": timedelta(seconds=timeout_s)} if timeout_s else {}
        try:
            dist.init_process_group(backend, **kwargs)
        except Exception as err:
            raise DistributedError(f"WORLD_SIZE={world} but the {backend} process group could not be initialised "
                                   f"({type(err).__name__}: {err})") from None
    return current(), str(torch_device)


def shutdown() -> None:
    """Leave the process group (after every rank has finished)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# ------------------------------------------------------------------ sharded frozen model
def repeated_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's transformer blocks (decoder layers; T5's encoder and decoder blocks): the
    classes transformers names in _no_split_modules."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    return [m for m in model.modules() if type(m).__name__ in names]


def shard_frozen_model(lm: PromptedLM, group: ProcessGroup) -> int:
    """fully_shard (FSDP2) each block of the frozen model over all ranks; returns how many.
    Embeddings and the LM head stay whole on every rank (the prompt is built from them)."""
    if not group.enabled:
        raise DistributedError("--fsdp shards the model over several processes: launch with "
                               "torchrun --nproc_per_node N (N > 1)")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    blocks = repeated_blocks(lm.model)
    if not blocks:
        raise DistributedError(f"--fsdp: found no transformer blocks to shard in {type(lm.model).__name__}")
    mesh = init_device_mesh(lm.device.type, (group.world_size,))
    for block in blocks:
        fully_shard(block, mesh=mesh)
    return len(blocks)


def is_sharded(lm: PromptedLM) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in lm.model.modules())


# ------------------------------------------------------------------ evaluation
def evaluate_sharded(
    group: ProcessGroup,
    lm: PromptedLM,
    task: Task,
    examples: Sequence[Example],
    prompt: torch.Tensor | None,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
    max_input_tokens: int | None = None,
) -> EvalResult:
    """evaluate() with the examples shared out over the ranks and the predictions gathered:
    every rank gets the whole result. A sharded (FSDP) model runs every batch on every rank
    instead, since each forward pass needs all ranks (shards of uneven length would hang)."""
    if not group.enabled or is_sharded(lm):
        return evaluate(lm, task, examples, prompt, batch_size, progress=progress, max_input_tokens=max_input_tokens)
    start = time.perf_counter()
    mine = group.shard(range(len(examples)))
    # progress counts the whole set: rank 0's share stands for every rank's
    scale = len(examples) / max(len(mine), 1)
    advance = None if progress is None else (lambda k: progress(round(k * scale)))
    with torch.no_grad():
        predictions, scores = predict(lm, [examples[i] for i in mine], prompt, batch_size, progress=advance,
                                      max_input_tokens=max_input_tokens)
    all_predictions: list[str] = [""] * len(examples)
    all_scores: list[list[float]] = [[] for _ in examples]
    for index, preds, rank_scores in group.gather((mine, predictions, scores)):
        for j, i in enumerate(index):
            all_predictions[i] = preds[j]
            if rank_scores is not None:
                all_scores[i] = rank_scores[j]
    metrics = task.compute_metrics(all_predictions, examples)
    return EvalResult(metrics, all_predictions, all_scores if scores is not None else None,
                      time.perf_counter() - start)

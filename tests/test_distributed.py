"""Data-parallel training with torch.distributed (gloo on a CPU): two processes make the prompt one
process makes, a killed two-process run resumes to the uninterrupted one, only rank 0 writes.

The global micro-batch is 5 examples, so the ranks get 3 and 2 rows: a gradient averaged per rank
(instead of weighted by each rank's tokens) or a wrong share of the batch changes the prompt.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from tiny import ToyTask, tiny_llama

from softprompt.core.config import ConfigError, PromptConfig, TrainConfig
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import read_prompt
from softprompt.evaluation.evaluator import evaluate
from softprompt.training import distributed
from softprompt.training.distributed import DistributedError, ProcessGroup
from softprompt.training.trainer import Trainer

pytestmark = pytest.mark.slow
WORLD = 2
KILL_AT = 5  # after the checkpoint at step 4, before the one at step 8
# a reparameterized prompt (its network's gradients summed too) on a decaying lr
RESIDUAL = {"reparameterization": "residual", "reparam_hidden": 8, "lr_schedule": "linear"}


class Killed(Exception):
    pass


def _trainer(run_dir, group, on_step=None, lm=None, objective="lm", **settings):
    lm = lm or tiny_llama()
    task = ToyTask()
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=4, init="sampled-vocab"), seed=0)
    # batch 5 over 2 ranks: shares of 3 and 2 rows; a dev subset of 5 exercises the final evaluation
    config = TrainConfig(batch_size=5, grad_accum_steps=2, max_steps=10, eval_every=4, log_every=2,
                         intermediate_eval_examples=5, optimizer="adam", learning_rate=0.05, objective=objective,
                         **settings)
    return Trainer(lm, prompt, task, task.load("train"), task.load("dev"), config, run_dir,
                   show_progress=False, on_step=on_step, group=group)


def _record_batches(trainer) -> list[list[str]]:
    """The inputs of every micro-batch share this rank trains on, filled in as it trains."""
    seen: list[list[str]] = []
    take = trainer._local_examples

    def record(stream, first):
        examples = take(stream, first)
        seen.append([ex.input for ex in examples])
        return examples

    trainer._local_examples = record
    return seen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, port: int) -> ProcessGroup:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    group, device = distributed.init_from_env("cpu")
    assert device == "cpu" and group.world_size == WORLD and group.rank == rank
    return group


def _leave() -> None:
    """Leave the group, then end the spawned process without interpreter teardown. Now and then (about one
    full-suite run in three on a 2-core machine, never the file alone) a child aborted after its last
    result was written ("terminate called without an active exception": a C++ thread destroyed while
    joinable at exit); every scenario's outcome is in the files the parent checks, and an error before
    this point still fails the test. The cause is not found (see the closing notes)."""
    distributed.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _scenarios(rank: int, port: int, root: str) -> None:
    """Every two-process run the tests check, in one process group (one start-up for all)."""
    group = _join(rank, port)
    base = Path(root)
    # each rank gets its own run folder: rank 1's must stay empty (nor may it need anything from it)
    full = _trainer(base / "full" / f"rank{rank}", group)
    seen = _record_batches(full)
    result = full.train()
    (base / f"seen{rank}.json").write_text(json.dumps({"seen": seen, "initial": result.initial_metrics,
                                                       "final": result.final_metrics}))

    def kill(step, loss):
        if step == KILL_AT:
            raise Killed

    try:
        _trainer(base / "killed" / f"rank{rank}", group, on_step=kill).train()
        raise AssertionError("not killed")
    except Killed:
        pass
    _trainer(base / "killed" / f"rank{rank}", group).train(resume=True)
    _trainer(base / "choices" / f"rank{rank}", group, objective="choices").train()
    _trainer(base / "residual" / f"rank{rank}", group, **RESIDUAL).train()

    # evaluation shared out and gathered: the single process's predictions and scores, in order
    lm, task = tiny_llama(), ToyTask()
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=4, init="sampled-vocab"), seed=0).weight.detach()
    sharded = distributed.evaluate_sharded(group, lm, task, task.load("dev"), prompt, batch_size=4)
    (base / f"eval{rank}.json").write_text(json.dumps({"predictions": sharded.predictions, "scores": sharded.scores,
                                                       "metrics": sharded.metrics}))
    _leave()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    mp.spawn(_scenarios, args=(_free_port(), str(root)), nprocs=WORLD, join=True)
    return root


def _log(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("elapsed", "seconds")} for r in rows]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The one-process run (with the micro-batches it trained on)."""
    trainer = _trainer(tmp_path_factory.mktemp("single"), ProcessGroup())
    seen = _record_batches(trainer)
    return trainer.train(), seen


def _same_prompts(run_dir: Path, reference: Path) -> None:
    """The best prompt and the last one (in the checkpoint) match the reference run's."""
    assert torch.allclose(read_prompt(run_dir / "prompt.safetensors").tensor,
                          read_prompt(reference / "prompt.safetensors").tensor, atol=1e-5, rtol=0)
    last, expected = torch.load(run_dir / "checkpoint.pt")["prompt"], torch.load(reference / "checkpoint.pt")["prompt"]
    assert torch.allclose(last, expected, atol=1e-5, rtol=0)


def test_two_processes_make_the_single_process_prompt(runs, single):
    single, seen_single = single
    two = runs / "full" / "rank0"
    _same_prompts(two, single.run_dir)
    # each rank trained on its own share of the global batch the single process drew
    per_rank = [json.loads((runs / f"seen{r}.json").read_text())["seen"] for r in range(WORLD)]
    assert [len(x) for x in per_rank[0][0:1] + per_rank[1][0:1]] == [3, 2]
    for k, batch in enumerate(seen_single):
        assert per_rank[0][k] == batch[0::2] and per_rank[1][k] == batch[1::2]
    # the same losses, evaluations and selection as one process
    log1, log2 = _log(single.run_dir), _log(two)
    assert [r["event"] for r in log1] == [r["event"] for r in log2]
    for a, b in zip(log1, log2):
        if a["event"] == "train":
            assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
        else:
            assert a == b
    result = json.loads((two / "result.json").read_text())
    assert result["best_step"] == single.best_step and result["final_metrics"] == single.final_metrics
    for r in range(WORLD):  # every rank returns the whole run's result
        record = json.loads((runs / f"seen{r}.json").read_text())
        assert record["initial"] == single.initial_metrics and record["final"] == single.final_metrics


def test_killed_two_process_run_resumes_to_the_uninterrupted_one(runs, single):
    full, killed = runs / "full" / "rank0", runs / "killed" / "rank0"
    _same_prompts(killed, single[0].run_dir)  # and both are the one-process run's
    assert torch.equal(read_prompt(killed / "prompt.safetensors").tensor,
                       read_prompt(full / "prompt.safetensors").tensor)
    assert torch.equal(torch.load(killed / "checkpoint.pt")["prompt"], torch.load(full / "checkpoint.pt")["prompt"])
    assert _log(killed) == _log(full)
    assert json.loads((killed / "result.json").read_text())["steps"] == 10


def test_two_processes_train_the_choices_objective_as_one(runs, tmp_path):
    single = _trainer(tmp_path, ProcessGroup(), objective="choices").train()
    two = runs / "choices" / "rank0"
    _same_prompts(two, single.run_dir)
    for a, b in zip(_log(single.run_dir), _log(two)):
        assert a.keys() == b.keys()
        if a["event"] == "train":
            assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)


def test_two_processes_train_a_residual_prompt_as_one(runs, tmp_path):
    single = _trainer(tmp_path, ProcessGroup(), **RESIDUAL).train()
    two = runs / "residual" / "rank0"
    _same_prompts(two, single.run_dir)
    # the network trained, and by the same steps on both: had its gradients not been summed, rank 0's
    # network would have stepped on its share of each batch alone
    net_two = torch.load(two / "checkpoint.pt")["reparameterization"]
    net_one = torch.load(single.run_dir / "checkpoint.pt")["reparameterization"]
    assert net_one["norm.weight"].abs().max() > 0
    for name, tensor in net_one.items():
        assert torch.allclose(net_two[name], tensor, atol=1e-5, rtol=0), name


def test_only_rank_0_writes(runs):
    assert sorted(p.name for p in (runs / "full" / "rank0").iterdir()) == [
        "checkpoint.pt", "metrics.jsonl", "prompt.safetensors", "result.json"]
    assert not (runs / "full" / "rank1").exists()
    assert not (runs / "killed" / "rank1").exists()


def test_sharded_evaluation_gathers_the_single_process_predictions(runs):
    lm, task = tiny_llama(), ToyTask()
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=4, init="sampled-vocab"), seed=0).weight.detach()
    single = evaluate(lm, task, task.load("dev"), prompt, batch_size=4)
    for r in range(WORLD):
        got = json.loads((runs / f"eval{r}.json").read_text())
        assert got["predictions"] == single.predictions and got["metrics"] == single.metrics
        assert torch.allclose(torch.tensor(got["scores"]), torch.tensor(single.scores), atol=1e-5)


# ---------------------------------------------------------------------------- errors
def test_world_size_without_a_process_group_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DistributedError, match="no torch.distributed process group is initialised"):
        distributed.current()
    with pytest.raises(DistributedError, match="train alone"):
        _trainer(tmp_path, None)


def test_world_size_without_rendezvous_vars_is_an_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DistributedError, match="RANK, MASTER_ADDR, MASTER_PORT not set"):
        distributed.init_from_env("cpu")


def test_mpirun_without_torchrun_vars_is_an_error(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    with pytest.raises(DistributedError, match="launch with torchrun"):
        distributed.init_from_env("cpu")


def test_batch_smaller_than_the_world_is_refused(tmp_path):
    lm = tiny_llama()
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=4, init="sampled-vocab"), seed=0)
    task = ToyTask()
    with pytest.raises(ConfigError, match="one example per process"):
        Trainer(lm, prompt, task, task.load("train"), None, TrainConfig(batch_size=1, max_steps=2, eval_every=2),
                tmp_path, group=ProcessGroup(rank=0, world_size=2))


def test_fsdp_needs_several_processes():
    with pytest.raises(DistributedError, match="torchrun --nproc_per_node N"):
        distributed.shard_frozen_model(tiny_llama(), ProcessGroup())


# ---------------------------------------------------------------------------- FSDP
def _fsdp_run(rank: int, port: int, root: str) -> None:
    group = _join(rank, port)
    lm = tiny_llama()
    assert distributed.shard_frozen_model(lm, group) == 2  # the two decoder layers
    assert distributed.is_sharded(lm)
    _trainer(Path(root) / f"rank{rank}", group, lm=lm).train()
    _leave()


def test_fsdp_sharded_frozen_model_makes_the_single_process_prompt(tmp_path, single):
    mp.spawn(_fsdp_run, args=(_free_port(), str(tmp_path / "fsdp")), nprocs=WORLD, join=True)
    _same_prompts(tmp_path / "fsdp" / "rank0", single[0].run_dir)
    assert not (tmp_path / "fsdp" / "rank1").exists()


# ---------------------------------------------------------------------------- the CLI under torchrun
def _cli(model_dir, data_dir, out, *extra, processes=WORLD):
    """`softprompt train` under torchrun (batch 3: shares of 2 and 1), or as one plain process."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                 "--master_port", str(_free_port())] if processes > 1 else [sys.executable])
    args = [*launcher, "-m", "softprompt.cli.main", "train", "--task", "sst2", "--model", str(model_dir),
            "--data-dir", str(data_dir), "--out", str(out), "-p", "3", "--steps", "120", "--batch-size", "3",
            "--eval-every", "60", "--checkpoint-every", "10", "--lr", "0.01", "--max-train", "64",
            "--max-eval", "6", "--device", "cpu", "--quiet", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _last_step(run_dir) -> int:
    log = run_dir / "metrics.jsonl"
    if not log.exists():
        return 0
    steps = [json.loads(line).get("step", 0) for line in log.read_text().splitlines() if line.endswith("}")]
    return max(steps, default=0)


def test_sigkilled_torchrun_cli_run_resumes_to_the_single_process_result(model_dir, data_dir, tmp_path):
    import psutil

    single = _cli(model_dir, data_dir, tmp_path / "single", processes=1)
    killed_dir = tmp_path / "killed"
    proc = _cli(model_dir, data_dir, killed_dir)
    deadline = time.monotonic() + 300
    while not (killed_dir / "checkpoint.pt").exists() or _last_step(killed_dir) < 20:
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # every process at once, the launcher included: no handler runs, nothing is flushed
    processes = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    assert len(processes) == 1 + WORLD
    for p in processes:
        p.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not (killed_dir / "result.json").exists()  # it really died mid-run

    resumed = _cli(model_dir, data_dir, killed_dir, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()[-3000:]
    assert single.wait(timeout=300) == 0, single.stderr.read().decode()[-3000:]
    _same_prompts(killed_dir, tmp_path / "single")
    log1, log2 = _log(tmp_path / "single"), _log(killed_dir)
    assert [r["event"] for r in log1] == [r["event"] for r in log2]
    for a, b in zip(log1, log2):
        assert a.get("metrics") == b.get("metrics") and a.get("loss") == pytest.approx(b.get("loss"), abs=1e-6)
    result = json.loads((killed_dir / "result.json").read_text())
    assert result["steps"] == 120 and result["run"]["processes"] == WORLD
    # (a temp file of an atomic write the kill cut short may be left: .<name>.<random>.tmp)
    assert sorted(p.name for p in killed_dir.iterdir() if not p.name.endswith(".tmp")) == [
        "checkpoint.pt", "metrics.jsonl", "prompt.safetensors", "result.json"]

"""A `softprompt train` process killed with SIGKILL (no cleanup, no exception handler) and resumed
ends with the same prompt and log as a run that was never interrupted."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from softprompt.core.prompt_file import read_prompt

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")]


def _train(model_dir, data_dir, out, *extra):
    args = [sys.executable, "-m", "softprompt.cli.main", "train", "--task", "sst2", "--model", str(model_dir),
            "--data-dir", str(data_dir), "--out", str(out), "-p", "3", "--steps", "300", "--batch-size", "2",
            "--eval-every", "100", "--checkpoint-every", "10", "--lr", "0.01", "--max-train", "64",
            "--max-eval", "4", "--quiet", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _strip(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("elapsed", "seconds")} for r in rows]


def test_sigkilled_cli_run_resumes_to_the_uninterrupted_result(model_dir, data_dir, tmp_path):
    full = _train(model_dir, data_dir, tmp_path / "full")
    assert full.wait(timeout=300) == 0, full.stderr.read().decode()

    killed_dir = tmp_path / "killed"
    proc = _train(model_dir, data_dir, killed_dir)
    deadline = time.monotonic() + 300
    # kill once a checkpoint beyond the first evaluation exists, mid-run
    while not (killed_dir / "checkpoint.pt").exists() or _last_step(killed_dir) < 20:
        assert proc.poll() is None, "the run ended before it could be killed; give it more steps"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not (killed_dir / "result.json").exists()  # it really died mid-run

    resumed = _train(model_dir, data_dir, killed_dir, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    assert torch.equal(read_prompt(killed_dir / "prompt.safetensors").tensor,
                       read_prompt(tmp_path / "full" / "prompt.safetensors").tensor)
    assert _strip(killed_dir / "metrics.jsonl") == _strip(tmp_path / "full" / "metrics.jsonl")
    assert json.loads((killed_dir / "result.json").read_text())["steps"] == 300


def _last_step(run_dir) -> int:
    log = run_dir / "metrics.jsonl"
    if not log.exists():
        return 0
    steps = [json.loads(line).get("step", 0) for line in log.read_text().splitlines() if line.endswith("}")]
    return max(steps, default=0)

"""The prompt registry (serving/registry.py): writes under load, restarts after kills, other models."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest
import torch
from serving_helpers import (
    ADMIN,
    LABELS,
    TEXTS,
    alone_scores,
    fill_prompts_dir,
    make_client,
    prompt_bytes,
    write_prompt,
)
from tiny import tiny_gemma3, tiny_llama

from softprompt.serving.registry import PromptRegistry

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def lm():
    return tiny_llama()


@pytest.fixture()
def prompts_dir(lm, tmp_path):
    return fill_prompts_dir(lm, tmp_path)


# =========================================================================== registry
def test_concurrent_uploads_and_deletes_while_requests_run(lm, prompts_dir, tmp_path):
    versions = [prompt_bytes(lm, tmp_path, name=f"v{i}", length=2 + i, seed=50 + i) for i in range(3)]
    stop = threading.Event()
    problems: list = []
    with make_client(lm, prompts_dir, max_wait_ms=5) as c:
        expected = alone_scores(lm, prompts_dir, "sst2", TEXTS[0], LABELS["sst2"])

        def infer():
            while not stop.is_set():
                r = c.post("/v1/classify", json={"prompt": "sst2", "inputs": [TEXTS[0]]})
                if r.status_code != 200:
                    problems.append(("stable", r.status_code, r.text))
                elif r.json()["results"][0]["scores"]["positive"] != pytest.approx(expected[0], abs=1e-4):
                    problems.append(("stable value", r.json()))
                r = c.post("/v1/classify", json={"prompt": "churn", "inputs": ["is it good ?"]})
                if r.status_code not in (200, 404):
                    problems.append(("churn", r.status_code, r.text))

        def admin(k):
            for j in range(8):
                if (j + k) % 3 == 2:
                    r = c.delete("/v1/prompts/churn", headers=ADMIN)
                    ok = (204, 404)
                else:
                    r = c.put("/v1/prompts/churn", content=versions[(j + k) % 3], headers=ADMIN)
                    ok = (200, 201)
                if r.status_code not in ok:
                    problems.append(("admin", r.status_code, r.text))

        readers = [threading.Thread(target=infer) for _ in range(3)]
        writers = [threading.Thread(target=admin, args=(k,)) for k in range(3)]
        for t in readers + writers:
            t.start()
        for t in writers:
            t.join(60)
        stop.set()
        for t in readers:
            t.join(60)
        assert not problems, problems[:3]
        registry = c.app.state.registry
        on_disk = sorted(p.name[: -len(".safetensors")] for p in prompts_dir.glob("*.safetensors"))
        assert on_disk == sorted(e.name for e in registry.list())
        assert not [p for p in prompts_dir.iterdir() if p.name.endswith(".tmp")]
        if "churn" in registry:
            assert (prompts_dir / "churn.safetensors").read_bytes() in versions
            assert registry.get("churn").sha256 == c.get("/v1/prompts/churn").json()["sha256"]
    # a fresh server over the same folder serves the same prompts
    with make_client(lm, prompts_dir) as c2:
        assert sorted(p["name"] for p in c2.get("/v1/prompts").json()["prompts"]) == on_disk


def test_restart_after_kill_mid_upload_keeps_registry(lm, prompts_dir, tmp_path):
    with make_client(lm, prompts_dir) as c:
        assert c.put("/v1/prompts/kept", content=prompt_bytes(lm, tmp_path), headers=ADMIN).status_code == 201
        before = c.get("/v1/prompts").json()["prompts"]
    good = (prompts_dir / "kept.safetensors").read_bytes()
    # what a kill leaves: an unfinished temp file (atomic_write's name pattern) ...
    (prompts_dir / ".kept.safetensors.abc123.tmp").write_bytes(good[:50])
    (prompts_dir / ".newone.safetensors.x9.tmp").write_bytes(good[:10])
    # ... and (from some other writer) a truncated file under a final name
    (prompts_dir / "broken.safetensors").write_bytes(good[: len(good) // 2])
    with make_client(lm, prompts_dir) as c:
        after = c.get("/v1/prompts").json()
        assert after["prompts"] == before  # every accepted prompt intact, same bytes (sha256)
        assert "broken" in after["unavailable"]
        assert not [p for p in prompts_dir.iterdir() if p.name.endswith(".tmp")]
        assert c.post("/v1/classify", json={"prompt": "kept", "inputs": ["a"]}).status_code == 200
        r = c.post("/v1/classify", json={"prompt": "broken", "inputs": ["a"]})
        assert r.status_code == 422
        assert "cannot be loaded" in r.json()["detail"]
        assert c.get("/v1/prompts/newone").status_code == 404
        # the admin can repair or remove the broken file
        assert c.put("/v1/prompts/broken", content=good, headers=ADMIN).status_code == 201
        assert c.delete("/v1/prompts/broken", headers=ADMIN).status_code == 204


def test_restart_after_sigkill_during_real_upload(lm, prompts_dir, tmp_path):
    """A process killed (SIGKILL) inside atomic_write, replacing an existing prompt."""
    old = (prompts_dir / "sst2.safetensors").read_bytes()
    new = prompt_bytes(lm, tmp_path, seed=123)
    (tmp_path / "new.bin").write_bytes(new)
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from softprompt.fileio import atomic_write
        data = Path({str(tmp_path / 'new.bin')!r}).read_bytes()
        def write(tmp):
            with open(tmp, "wb") as f:
                f.write(data[: len(data) // 2]); f.flush()
            print("half", flush=True)
            time.sleep(60)
        atomic_write(Path({str(prompts_dir / 'sst2.safetensors')!r}), write)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "half"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert [p for p in prompts_dir.iterdir() if p.name.endswith(".tmp")]  # the kill left a temp file
    registry = PromptRegistry(prompts_dir, lm)
    assert (prompts_dir / "sst2.safetensors").read_bytes() == old
    assert sorted(e.name for e in registry.list()) == sorted(LABELS)
    assert not registry.unavailable
    assert len(registry.removed_temp_files) == 1
    assert not [p for p in prompts_dir.iterdir() if p.name.endswith(".tmp")]


def test_prompt_for_another_model_in_folder_is_not_served(lm, prompts_dir):
    write_prompt(tiny_gemma3(), prompts_dir, "gemma")
    with make_client(lm, prompts_dir) as c:
        listing = c.get("/v1/prompts").json()
        assert "gemma" in listing["unavailable"]
        assert "gemma" not in [p["name"] for p in listing["prompts"]]
        assert c.post("/v1/classify", json={"prompt": "gemma", "inputs": ["a"]}).status_code == 409

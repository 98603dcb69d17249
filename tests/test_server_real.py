"""Load test: the real smollm2 model served on loopback, 8 concurrent clients over 8 prompts."""
from __future__ import annotations

import threading
import time

import httpx
import pytest
import torch

from softprompt.core.prompt_file import metadata_for, save_prompt
from softprompt.serving.app import create_app
from softprompt.serving.background import serve_in_thread
from softprompt.serving.settings import ServerSettings

LABEL_PAIRS = [("positive", "negative"), ("yes", "no"), ("true", "false"), ("good", "bad"),
               ("agree", "disagree"), ("spam", "ham"), ("happy", "sad"), ("same", "different")]
INPUTS = [
    "Review: a gripping, funny film with great actors. Sentiment:",
    "Question: is the sky green? Answer:",
    "Claim: water boils at 100 degrees at sea level. True or false:",
    "The plot was long and the ending made no sense. Verdict:",
    "Statement: prices should be lower. Do you agree:",
    "Email: You won a free cruise, click here now! Label:",
    "Message: I finally passed my exam! Mood:",
    "Sentence A: the cat sat. Sentence B: a cat was sitting. Relation:",
]


@pytest.mark.real_model
def test_load_test_smollm2_on_loopback(tmp_path):
    from softprompt.core.loading import load_model

    torch.set_num_threads(1)  # robust on shared machines (more threads than free cores stall small passes)
    lm = load_model("smollm2")
    scale = lm.input_embeddings.weight[:5000].float().std().item() * 3 ** 0.5
    g = torch.Generator().manual_seed(0)
    for i, labels in enumerate(LABEL_PAIRS):
        tensor = (torch.rand(8, lm.hidden_size, generator=g) * 2 - 1) * scale
        save_prompt(tmp_path / f"task{i}.safetensors", tensor,
                    metadata_for(lm, tensor, task=f"task{i}", label_words=list(labels), init="random-uniform"))
    app = create_app(lm, tmp_path, ServerSettings(max_batch_size=16, max_wait_ms=10))
    n_threads, per_thread = 8, 5
    failures: list = []
    latencies: list[float] = []
    started = time.perf_counter()
    with serve_in_thread(app) as url:
        def client(k: int) -> None:
            with httpx.Client(base_url=url, timeout=120) as http:
                for j in range(per_thread):
                    task = (k + 3 * j) % 8
                    t0 = time.perf_counter()
                    if j == per_thread - 1 and k % 4 == 0:
                        r = http.post("/v1/generate", json={"prompt": f"task{task}", "inputs": [INPUTS[task]],
                                                            "max_new_tokens": 4})
                    else:
                        r = http.post("/v1/classify", json={"prompt": f"task{task}", "inputs": [INPUTS[(task + j) % 8]]})
                    latencies.append(time.perf_counter() - t0)
                    if r.status_code != 200:
                        failures.append((r.status_code, r.text))
                    elif "labels" in r.json() and r.json()["results"][0]["label"] not in LABEL_PAIRS[task]:
                        failures.append(("label", r.json()))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not any(t.is_alive() for t in threads), "clients did not finish in time"
        metrics = httpx.get(f"{url}/metrics").text
    elapsed = time.perf_counter() - started
    assert not failures, failures[:3]
    assert len(latencies) == n_threads * per_thread
    assert elapsed < 300
    history = list(app.state.scheduler.history)
    assert sum(r.rows for r in history) == n_threads * per_thread
    assert max(len(r.prompts) for r in history) > 1  # batches mixed several tasks
    assert 'softprompt_requests_total{endpoint="/v1/classify",method="POST",status="200"}' in metrics
    print(f"\n{n_threads * per_thread} requests in {elapsed:.1f} s, {len(history)} batches, "
          f"max latency {max(latencies):.2f} s")

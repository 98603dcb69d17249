"""The prompt server (issue 4): endpoints, errors, mixed-task batching, registry, metrics."""
from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file
from tiny import tiny_gemma3, tiny_llama, tiny_t5

from softprompt.core.prompt_file import metadata_for, read_prompt, save_prompt
from softprompt.serving.app import create_app
from softprompt.serving.client import ClientError, SoftPromptClient
from softprompt.serving.errors import InferenceFailed, QueueFull, ShuttingDown
from softprompt.serving.registry import PromptRegistry
from softprompt.serving.scheduler import BatchScheduler, PromptedLMExecutor, Row, wait_idle
from softprompt.serving.settings import ServerSettings

torch.set_num_threads(1)

ADMIN = {"Authorization": "Bearer admin-secret"}
LABELS = {
    "sst2": ["positive", "negative"],
    "rte": ["entailment", "not_entailment"],
    "boolq": ["yes", "no"],
    "cb": ["entailment", "contradiction", "neutral"],
}
TEXTS = [
    "sst2 sentence : the movie was great", "sst2 sentence : a dull plot", "rte premise : it is long",
    "boolq question : is it good ? passage : the film is fun", "cb premise : the story was sad",
    "the actors were really funny", "a very long and boring film . the plot was bad",
    "what a smart story",
]


def random_prompt(lm, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(length, lm.hidden_size, generator=g) * 2 - 1) * 0.5


def write_prompt(lm, folder: Path, name: str, length: int = 4, seed: int = 0, labels=None) -> Path:
    tensor = random_prompt(lm, length, seed)
    labels = labels if labels is not None else LABELS.get(name, ["positive", "negative"])
    return save_prompt(folder / f"{name}.safetensors", tensor, metadata_for(lm, tensor, task=name, label_words=labels))


def prompt_bytes(lm, tmp_path: Path, name: str = "p", length: int = 3, seed: int = 7, labels=("yes", "no")) -> bytes:
    path = write_prompt(lm, tmp_path / "scratch", name, length, seed, list(labels))
    return path.read_bytes()


@pytest.fixture(scope="module")
def lm():
    return tiny_llama()


@pytest.fixture()
def prompts_dir(lm, tmp_path):
    folder = tmp_path / "prompts"
    folder.mkdir()
    for i, name in enumerate(LABELS):
        write_prompt(lm, folder, name, length=2 + i, seed=i)  # different prompt lengths on purpose
    return folder


def make_client(lm, folder, **settings) -> TestClient:
    settings.setdefault("admin_token", "admin-secret")
    settings.setdefault("max_wait_ms", 2)
    return TestClient(create_app(lm, folder, ServerSettings(**settings)))


@pytest.fixture()
def client(lm, prompts_dir):
    with make_client(lm, prompts_dir) as c:
        yield c


def alone_scores(lm, folder, name, text, labels):
    tensor = read_prompt(folder / f"{name}.safetensors").tensor
    return lm.score_options([text], [labels], [tensor])[0]


# =========================================================================== endpoints
def test_classify_defaults_to_label_words_and_matches_direct_scoring(client, lm, prompts_dir):
    r = client.post("/v1/classify", json={"prompt": "cb", "inputs": TEXTS[:3]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["prompt"] == "cb" and body["labels"] == LABELS["cb"]
    assert len(body["results"]) == 3
    for text, result in zip(TEXTS[:3], body["results"]):
        expected = alone_scores(lm, prompts_dir, "cb", text, LABELS["cb"])
        got = [result["scores"][label] for label in LABELS["cb"]]
        assert got == pytest.approx(expected, abs=1e-4)
        assert result["label"] == LABELS["cb"][max(range(3), key=lambda j: expected[j])]
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        softmax = torch.tensor(got).softmax(-1).tolist()
        assert [result["probabilities"][label] for label in LABELS["cb"]] == pytest.approx(softmax, abs=1e-6)


def test_classify_with_explicit_multi_token_labels(client, lm, prompts_dir):
    labels = ["very good", "bad"]
    r = client.post("/v1/classify", json={"prompt": "sst2", "inputs": [TEXTS[0]], "labels": labels})
    assert r.status_code == 200, r.text
    got = [r.json()["results"][0]["scores"][label] for label in labels]
    assert got == pytest.approx(alone_scores(lm, prompts_dir, "sst2", TEXTS[0], labels), abs=1e-4)


def test_generate_matches_direct_generation(client, lm, prompts_dir):
    r = client.post("/v1/generate", json={"prompt": "rte", "inputs": TEXTS[:2], "max_new_tokens": 6})
    assert r.status_code == 200, r.text
    tensor = read_prompt(prompts_dir / "rte.safetensors").tensor
    expected = [lm.generate([t], [tensor], max_new_tokens=6)[0] for t in TEXTS[:2]]
    assert [x["text"] for x in r.json()["results"]] == expected


def test_score_endpoint(client, lm, prompts_dir):
    targets = ["positive", "was great", "the plot was bad"]
    r = client.post("/v1/score", json={"prompt": "boolq", "input": TEXTS[3], "targets": targets})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["target"] for x in results] == targets
    expected = alone_scores(lm, prompts_dir, "boolq", TEXTS[3], targets)
    assert [x["log_likelihood"] for x in results] == pytest.approx(expected, abs=1e-4)


def test_list_and_show_prompts_without_weights(client, lm):
    r = client.get("/v1/prompts")
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "tiny-llama"
    assert [p["name"] for p in body["prompts"]] == sorted(LABELS)
    assert body["unavailable"] == {}
    r = client.get("/v1/prompts/cb")
    assert r.status_code == 200
    info = r.json()
    assert info["label_words"] == LABELS["cb"] and info["prompt_length"] == 5 and info["hidden_size"] == 32
    assert info["embedding_fingerprint"] == lm.fingerprint() and len(info["sha256"]) == 64
    assert "tensor" not in json.dumps(info) and "weight" not in info
    assert client.get("/v1/prompts/nope").status_code == 404


def test_upload_replace_and_delete(client, lm, tmp_path, prompts_dir):
    data = prompt_bytes(lm, tmp_path)
    r = client.put("/v1/prompts/fresh", content=data, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "fresh" and r.json()["label_words"] == ["yes", "no"]
    assert (prompts_dir / "fresh.safetensors").read_bytes() == data
    r = client.post("/v1/classify", json={"prompt": "fresh", "inputs": ["is it good ?"]})
    assert r.status_code == 200 and r.json()["labels"] == ["yes", "no"]
    # replace: 200, and the new weights are used
    data2 = prompt_bytes(lm, tmp_path, length=5, seed=99, labels=("true", "false"))
    r = client.put("/v1/prompts/fresh", content=data2, headers=ADMIN)
    assert r.status_code == 200 and r.json()["prompt_length"] == 5
    assert client.post("/v1/classify", json={"prompt": "fresh", "inputs": ["x"]}).json()["labels"] == ["true", "false"]
    # delete
    assert client.delete("/v1/prompts/fresh", headers=ADMIN).status_code == 204
    assert not (prompts_dir / "fresh.safetensors").exists()
    assert client.post("/v1/classify", json={"prompt": "fresh", "inputs": ["x"]}).status_code == 404
    assert client.delete("/v1/prompts/fresh", headers=ADMIN).status_code == 404


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["prompts"] == 4 and body["batching"] == "mixed"


# =========================================================================== errors
def test_unknown_prompt_404_everywhere(client):
    assert client.post("/v1/classify", json={"prompt": "zzz", "inputs": ["a"]}).status_code == 404
    assert client.post("/v1/generate", json={"prompt": "zzz", "inputs": ["a"]}).status_code == 404
    assert client.post("/v1/score", json={"prompt": "zzz", "input": "a", "targets": ["b"]}).status_code == 404


@pytest.mark.parametrize("body", [
    {"inputs": ["a"]},                                               # no prompt
    {"prompt": "sst2"},                                              # no inputs
    {"prompt": "sst2", "inputs": []},                                # empty inputs
    {"prompt": "sst2", "inputs": "not a list"},
    {"prompt": "sst2", "inputs": [3]},
    {"prompt": "sst2", "inputs": ["a"], "labels": []},
    {"prompt": "sst2", "inputs": ["a"], "labels": ["yes", "yes"]},   # duplicate labels
    {"prompt": "sst2", "inputs": ["a"], "labels": ["yes", " "]},     # blank label
    {"prompt": "sst2", "inputs": ["a"], "surprise": 1},              # unknown field
])
def test_malformed_classify_422(client, body):
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 422, r.text
    assert "detail" in r.json()


def test_malformed_json_and_other_422(client, lm, tmp_path):
    r = client.post("/v1/classify", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert client.post("/v1/generate", json={"prompt": "sst2", "inputs": ["a"], "max_new_tokens": 0}).status_code == 422
    assert client.post("/v1/score", json={"prompt": "sst2", "input": "a", "targets": []}).status_code == 422
    # a prompt without label_words needs explicit labels
    data = prompt_bytes(lm, tmp_path, labels=())
    assert client.put("/v1/prompts/nolabels", content=data, headers=ADMIN).status_code == 201
    r = client.post("/v1/classify", json={"prompt": "nolabels", "inputs": ["a"]})
    assert r.status_code == 422 and "label" in r.json()["detail"]
    assert client.post("/v1/classify", json={"prompt": "nolabels", "inputs": ["a"], "labels": ["yes", "no"]}).status_code == 200


def test_size_limits_413(lm, prompts_dir):
    with make_client(lm, prompts_dir, max_input_chars=50, max_inputs_per_request=3, max_labels=3,
                     max_new_tokens=8, max_request_bytes=2000) as c:
        ok = {"prompt": "sst2", "inputs": ["a"] * 3}
        assert c.post("/v1/classify", json=ok).status_code == 200
        assert c.post("/v1/classify", json={"prompt": "sst2", "inputs": ["a"] * 4}).status_code == 413
        assert c.post("/v1/classify", json={"prompt": "sst2", "inputs": ["a" * 51]}).status_code == 413
        assert c.post("/v1/classify", json={**ok, "labels": ["a", "b", "c", "d"]}).status_code == 413
        assert c.post("/v1/classify", json={**ok, "labels": ["a" * 51, "b"]}).status_code == 413
        assert c.post("/v1/generate", json={"prompt": "sst2", "inputs": ["a"], "max_new_tokens": 9}).status_code == 413
        assert c.post("/v1/score", json={"prompt": "sst2", "input": "a" * 51, "targets": ["b"]}).status_code == 413
        assert c.post("/v1/score", json={"prompt": "sst2", "input": "a", "targets": list("abcd")}).status_code == 413
        r = c.post("/v1/classify", json={"prompt": "sst2", "inputs": ["a" * 40] * 60})
        assert r.status_code == 413 and "limit" in r.json()["detail"]  # whole body over max_request_bytes


def test_upload_errors(client, lm, tmp_path, prompts_dir):
    good = prompt_bytes(lm, tmp_path)
    # tokens: missing 401, wrong 403, admin-only (no admin token configured) 403
    r = client.put("/v1/prompts/x", content=good)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.put("/v1/prompts/x", content=good, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.delete("/v1/prompts/sst2").status_code == 401
    assert client.delete("/v1/prompts/sst2", headers={"Authorization": "Bearer nope"}).status_code == 403
    # malformed files 422
    assert client.put("/v1/prompts/x", content=b"garbage bytes", headers=ADMIN).status_code == 422
    assert client.put("/v1/prompts/x", content=b"", headers=ADMIN).status_code == 422
    assert client.put("/v1/prompts/x", content=good[: len(good) // 2], headers=ADMIN).status_code == 422
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    meta = metadata_for(lm, torch.zeros(3, 32), label_words=["yes", "no"]).to_strings()

    def raw(tensor, metadata=meta, key="prompt"):
        path = bad_dir / "raw.safetensors"
        save_file({key: tensor}, str(path), metadata=metadata)
        return path.read_bytes()

    assert client.put("/v1/prompts/x", content=raw(torch.zeros(4, 32)), headers=ADMIN).status_code == 422  # shape vs metadata
    nan = torch.zeros(3, 32)
    nan[1, 2] = float("nan")
    r = client.put("/v1/prompts/x", content=raw(nan), headers=ADMIN)
    assert r.status_code == 422 and "finite" in r.json()["detail"]
    assert client.put("/v1/prompts/x", content=raw(torch.zeros(3, 32, dtype=torch.int32)), headers=ADMIN).status_code == 422
    assert client.put("/v1/prompts/x", content=raw(torch.zeros(3, 32), key="other"), headers=ADMIN).status_code == 422
    assert client.put("/v1/prompts/x", content=raw(torch.zeros(3, 32), metadata={"format": "pt"}), headers=ADMIN).status_code == 422
    # invalid names 422
    for name in ("-dash", ".hidden", "x.safetensors", "a" * 200):
        assert client.put(f"/v1/prompts/{name}", content=good, headers=ADMIN).status_code == 422, name
    # a prompt for another model: 409 (same hidden size, other embeddings; and other hidden size)
    for other in (tiny_llama(seed=1), tiny_t5()):
        other_bytes = write_prompt(other, tmp_path / "other", "o").read_bytes()
        r = client.put("/v1/prompts/x", content=other_bytes, headers=ADMIN)
        assert r.status_code == 409 and "fingerprint" in r.json()["detail"], r.text
    # nothing was written, no temp file left behind
    assert sorted(p.name for p in prompts_dir.iterdir()) == sorted(f"{n}.safetensors" for n in LABELS)
    assert client.get("/v1/prompts/x").status_code == 404


def test_upload_size_limit_413(lm, prompts_dir, tmp_path):
    good = prompt_bytes(lm, tmp_path)
    with make_client(lm, prompts_dir, max_upload_bytes=len(good) - 1) as c:
        r = c.put("/v1/prompts/big", content=good, headers=ADMIN)
        assert r.status_code == 413
        # without Content-Length (chunked): caught while streaming
        r = c.put("/v1/prompts/big", content=iter([good[:100], good[100:]]), headers=ADMIN)
        assert r.status_code == 413
        assert not (prompts_dir / "big.safetensors").exists()
    with make_client(lm, prompts_dir, max_upload_bytes=len(good)) as c:
        assert c.put("/v1/prompts/big", content=good, headers=ADMIN).status_code == 201


def test_uploads_disabled_without_admin_token(lm, prompts_dir, tmp_path):
    with make_client(lm, prompts_dir, admin_token=None) as c:
        r = c.put("/v1/prompts/x", content=prompt_bytes(lm, tmp_path), headers=ADMIN)
        assert r.status_code == 403 and "--admin-token" in r.json()["detail"]
        assert c.delete("/v1/prompts/sst2", headers=ADMIN).status_code == 403
        assert c.post("/v1/classify", json={"prompt": "sst2", "inputs": ["a"]}).status_code == 200  # open


def test_api_token(lm, prompts_dir):
    with make_client(lm, prompts_dir, api_token="api-secret") as c:
        body = {"prompt": "sst2", "inputs": ["a"]}
        r = c.post("/v1/classify", json=body)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.post("/v1/classify", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert c.post("/v1/classify", json=body, headers={"Authorization": "Basic api-secret"}).status_code == 401
        assert c.post("/v1/classify", json=body, headers={"Authorization": "Bearer api-secret"}).status_code == 200
        assert c.post("/v1/classify", json=body, headers=ADMIN).status_code == 200  # admin may infer too
        assert c.get("/v1/prompts").status_code == 401
        assert c.get("/v1/prompts", headers={"Authorization": "Bearer api-secret"}).status_code == 200
        # the API token does not allow uploads
        assert c.delete("/v1/prompts/sst2", headers={"Authorization": "Bearer api-secret"}).status_code == 403
        # health and metrics stay open
        assert c.get("/healthz").status_code == 200 and c.get("/metrics").status_code == 200


def test_batch_exception_fails_only_that_request_and_server_survives(client, lm):
    scheduler = client.app.state.scheduler
    real = scheduler.executor

    def flaky(kind, rows):
        if any("boom" in r.text for r in rows):
            raise RuntimeError("kaboom")
        return real(kind, rows)

    scheduler.executor = flaky
    scheduler.max_wait = 0.3  # gather the concurrent requests into one batch
    results = {}

    def call(key, text):
        results[key] = client.post("/v1/classify", json={"prompt": "sst2", "inputs": [text]})

    threads = [threading.Thread(target=call, args=(i, t)) for i, t in enumerate(["a", "boom", "the film", "fun"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[1].status_code == 500 and "kaboom" in results[1].json()["detail"]
    assert all(results[k].status_code == 200 for k in (0, 2, 3))
    scheduler.max_wait = 0.002
    assert client.post("/v1/classify", json={"prompt": "sst2", "inputs": ["ok"]}).status_code == 200
    text = client.get("/metrics").text
    assert re.search(r'softprompt_batch_failures_total\{kind="classify"\} [1-9]', text)


def test_timeout_504_and_queue_full_503(lm, prompts_dir):
    with make_client(lm, prompts_dir, request_timeout_s=0.05, max_queue_rows=3) as c:
        scheduler = c.app.state.scheduler
        real = scheduler.executor

        def slow(kind, rows):
            time.sleep(0.3)
            return real(kind, rows)

        scheduler.executor = slow
        assert c.post("/v1/classify", json={"prompt": "sst2", "inputs": ["a"]}).status_code == 504
        assert c.post("/v1/classify", json={"prompt": "sst2", "inputs": ["a"] * 4}).status_code == 503
        scheduler.executor = real
        assert wait_idle(scheduler)
        assert c.post("/v1/classify", json={"prompt": "sst2", "inputs": ["a"]}).status_code == 200


# =========================================================================== batching
def _make_rows(lm, folder, kind, names, texts, options=None, max_new_tokens=0):
    rows = []
    for name, text in zip(names, texts):
        tensor = read_prompt(folder / f"{name}.safetensors").tensor
        opts = tuple(options[name] if options is not None else LABELS[name]) if kind != "generate" else ()
        rows.append(Row(kind, name, tensor, text, opts, max_new_tokens))
    return rows


@pytest.mark.parametrize("maker", [tiny_llama, tiny_gemma3, tiny_t5])
def test_mixed_batch_equals_each_request_alone(maker, tmp_path):
    model = maker()
    for i, name in enumerate(LABELS):
        write_prompt(model, tmp_path, name, length=2 + i, seed=10 + i)
    names = [list(LABELS)[i % 4] for i in range(len(TEXTS))]
    rows = _make_rows(model, tmp_path, "classify", names, TEXTS)
    # max_batch_size = number of rows, long wait: exactly one forward pass with all of them
    scheduler = BatchScheduler(model, max_batch_size=len(rows), max_wait_ms=10_000)
    try:
        jobs = [scheduler.submit([r]) for r in rows]
        mixed = [job.future.result(30)[0] for job in jobs]
        assert len(scheduler.history) == 1
        record = scheduler.history[0]
        assert record.rows == len(rows) and len(record.prompts) == 4 and record.ok
        for row, got in zip(rows, mixed):
            alone = model.score_options([row.text], [list(row.options)], [row.prompt])[0]
            assert got == pytest.approx(alone, abs=1e-4)
        # generation: decoded together with the KV cache, same text as alone
        gen_rows = _make_rows(model, tmp_path, "generate", names, TEXTS, max_new_tokens=5)
        scheduler.max_batch_size = len(gen_rows)
        jobs = [scheduler.submit([r]) for r in gen_rows]
        texts = [job.future.result(30)[0] for job in jobs]
        assert scheduler.history[-1].kind == "generate" and scheduler.history[-1].rows == len(gen_rows)
        for row, got in zip(gen_rows, texts):
            assert got == model.generate([row.text], [row.prompt], max_new_tokens=5)[0]
    finally:
        scheduler.close()


def test_per_task_mode_batches_one_prompt_at_a_time(lm, prompts_dir):
    names = [list(LABELS)[i % 4] for i in range(16)]
    texts = [TEXTS[i % len(TEXTS)] for i in range(16)]
    rows = _make_rows(lm, prompts_dir, "classify", names, texts)
    scheduler = BatchScheduler(lm, max_batch_size=16, max_wait_ms=50, batching="per-task")
    try:
        jobs = [scheduler.submit([r]) for r in rows]
        results = [job.future.result(30)[0] for job in jobs]
        assert all(len(rec.prompts) == 1 for rec in scheduler.history)
        assert sum(rec.rows for rec in scheduler.history) == 16 and len(scheduler.history) >= 4
        for row, got in zip(rows, results):
            assert got == pytest.approx(lm.score_options([row.text], [list(row.options)], [row.prompt])[0], abs=1e-4)
    finally:
        scheduler.close()


def test_scheduler_kinds_are_batched_separately_and_requests_split(lm, prompts_dir):
    scheduler = BatchScheduler(lm, max_batch_size=3, max_wait_ms=20)
    try:
        big = _make_rows(lm, prompts_dir, "classify", ["sst2"] * 7, TEXTS[:7])
        gens = _make_rows(lm, prompts_dir, "generate", ["rte", "cb"], TEXTS[:2], max_new_tokens=3)
        scores = _make_rows(lm, prompts_dir, "score", ["boolq"], TEXTS[:1], options={"boolq": ["yes", "was great"]})
        j1, j2, j3 = scheduler.submit(big), scheduler.submit(gens), scheduler.submit(scores)
        out1, out2, out3 = j1.future.result(30), j2.future.result(30), j3.future.result(30)
        assert len(out1) == 7 and all(len(s) == 2 for s in out1)
        assert len(out2) == 2 and all(isinstance(t, str) for t in out2)
        assert len(out3) == 1 and len(out3[0]) == 2
        assert all(rec.rows <= 3 for rec in scheduler.history)
        assert {rec.kind for rec in scheduler.history} == {"classify", "generate", "score"}
    finally:
        scheduler.close()


def test_scheduler_failure_isolation_queue_limit_and_close(lm, prompts_dir):
    real = PromptedLMExecutor(lm)

    def flaky(kind, rows):
        if any(r.text == "boom" for r in rows):
            raise ValueError("bad row")
        return real(kind, rows)

    scheduler = BatchScheduler(executor=flaky, max_batch_size=3, max_wait_ms=10_000, max_queue_rows=5)
    rows = _make_rows(lm, prompts_dir, "classify", ["sst2", "rte", "cb"], ["fine", "boom", "good"])
    jobs = [scheduler.submit([r]) for r in rows]
    assert isinstance(jobs[1].future.exception(30), InferenceFailed)
    assert len(jobs[0].future.result(30)[0]) == 2 and len(jobs[2].future.result(30)[0]) == 3
    with pytest.raises(QueueFull):
        scheduler.submit(rows * 2)
    pending = scheduler.submit(rows[:1])  # waits (batch not full, long wait) until close
    scheduler.close()
    assert isinstance(pending.future.exception(5), ShuttingDown)
    with pytest.raises(ShuttingDown):
        scheduler.submit(rows[:1])


def test_concurrent_http_requests_mixed_across_prompts(lm, prompts_dir):
    with make_client(lm, prompts_dir, max_wait_ms=20, max_batch_size=16) as c:
        names = list(LABELS)
        expected = {(n, t): alone_scores(lm, prompts_dir, n, t, LABELS[n]) for n in names for t in TEXTS}
        failures = []

        def worker(k):
            for j in range(6):
                name, text = names[(k + j) % 4], TEXTS[(k * 3 + j) % len(TEXTS)]
                r = c.post("/v1/classify", json={"prompt": name, "inputs": [text]})
                if r.status_code != 200:
                    failures.append(r.text)
                    continue
                got = [r.json()["results"][0]["scores"][label] for label in LABELS[name]]
                if not all(math.isclose(a, b, abs_tol=1e-4) for a, b in zip(got, expected[(name, text)])):
                    failures.append((name, text, got, expected[(name, text)]))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not failures
        history = list(c.app.state.scheduler.history)
        assert sum(r.rows for r in history) == 48
        assert max(len(r.prompts) for r in history) > 1  # some batches really mixed tasks


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
        assert r.status_code == 422 and "cannot be loaded" in r.json()["detail"]
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
    assert sorted(e.name for e in registry.list()) == sorted(LABELS) and not registry.unavailable
    assert len(registry.removed_temp_files) == 1
    assert not [p for p in prompts_dir.iterdir() if p.name.endswith(".tmp")]


def test_prompt_for_another_model_in_folder_is_not_served(lm, prompts_dir):
    write_prompt(tiny_gemma3(), prompts_dir, "gemma")
    with make_client(lm, prompts_dir) as c:
        listing = c.get("/v1/prompts").json()
        assert "gemma" in listing["unavailable"] and "gemma" not in [p["name"] for p in listing["prompts"]]
        assert c.post("/v1/classify", json={"prompt": "gemma", "inputs": ["a"]}).status_code == 409


# =========================================================================== metrics, schema, client
def test_metrics_endpoint(client):
    for _ in range(3):
        assert client.post("/v1/classify", json={"prompt": "sst2", "inputs": ["a", "b"]}).status_code == 200
    assert client.post("/v1/classify", json={"prompt": "nope", "inputs": ["a"]}).status_code == 404
    client.get("/v1/prompts/sst2")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert 'softprompt_requests_total{endpoint="/v1/classify",method="POST",status="200"} 3' in text
    assert 'softprompt_requests_total{endpoint="/v1/classify",method="POST",status="404"} 1' in text
    assert 'softprompt_requests_total{endpoint="/v1/prompts/{name}",method="GET",status="200"} 1' in text
    assert 'softprompt_rows_total{kind="classify"} 6' in text
    assert re.search(r'softprompt_batch_rows_count\{kind="classify"\} [1-6]\n', text)
    assert 'softprompt_batch_rows_bucket{kind="classify",le="+Inf"}' in text
    assert re.search(r'softprompt_request_duration_seconds_bucket\{endpoint="/v1/classify",le="0.1"\} \d+', text)
    assert "softprompt_queue_depth 0" in text and "softprompt_prompts_loaded 4" in text
    assert "# TYPE softprompt_batch_duration_seconds histogram" in text
    assert "# TYPE softprompt_queue_depth gauge" in text
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]+="([^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$')
    for line in text.strip().splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line


def test_openapi_schema_complete(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths["/v1/prompts/{name}"]) == {"get", "put", "delete"}
    for path in ("/v1/classify", "/v1/generate", "/v1/score", "/v1/prompts", "/healthz", "/metrics"):
        assert path in paths
    classify = paths["/v1/classify"]["post"]
    assert {"200", "401", "403", "404", "413", "422", "500"} <= set(classify["responses"])
    assert "application/octet-stream" in paths["/v1/prompts/{name}"]["put"]["requestBody"]["content"]
    comps = schema["components"]["schemas"]
    for model in ("ClassifyRequest", "ClassifyResponse", "GenerateRequest", "ScoreRequest", "PromptInfo", "ErrorResponse"):
        assert model in comps
    props = comps["ClassifyRequest"]["properties"]
    assert all(props[f].get("description") and props[f].get("examples") for f in ("prompt", "inputs", "labels"))
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_python_client_class(client, lm, tmp_path):
    sp = SoftPromptClient("http://testserver", token="", admin_token="admin-secret", http_client=client)
    assert sp.health()["status"] == "ok"
    out = sp.classify("sst2", "the movie was great")
    assert out["results"][0]["label"] in LABELS["sst2"]
    assert len(sp.generate("rte", ["a", "b"], max_new_tokens=2)["results"]) == 2
    assert len(sp.score("cb", "a", ["yes", "no"])["results"]) == 2
    assert sp.upload_prompt("up", prompt_bytes(lm, tmp_path))["name"] == "up"
    assert "up" in [p["name"] for p in sp.prompts()["prompts"]] and sp.prompt("up")["prompt_length"] == 3
    sp.delete_prompt("up")
    with pytest.raises(ClientError) as err:
        sp.prompt("up")
    assert err.value.status == 404
    assert "softprompt_requests_total" in sp.metrics()

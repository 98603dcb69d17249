"""The HTTP API (serving/app.py, routes.py): endpoints, errors, limits, auth, metrics, schema, client."""
from __future__ import annotations

import json
import math
import re
import threading
import time

import pytest
import torch
from safetensors.torch import save_file
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
from tiny import tiny_llama, tiny_t5

from softprompt.core.prompt_file import metadata_for, read_prompt
from softprompt.serving.client import ClientError, SoftPromptClient
from softprompt.serving.scheduler import wait_idle
from softprompt.serving.settings import ServerSettings

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def lm():
    return tiny_llama()


@pytest.fixture()
def prompts_dir(lm, tmp_path):
    return fill_prompts_dir(lm, tmp_path)


@pytest.fixture()
def client(lm, prompts_dir):
    with make_client(lm, prompts_dir) as c:
        yield c


# =========================================================================== endpoints
def test_classify_defaults_to_label_words_and_matches_direct_scoring(client, lm, prompts_dir):
    r = client.post("/v1/classify", json={"prompt": "cb", "inputs": TEXTS[:3]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["prompt"] == "cb"
    assert body["labels"] == LABELS["cb"]
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
    assert info["label_words"] == LABELS["cb"]
    assert info["prompt_length"] == 5
    assert info["hidden_size"] == 32
    assert info["embedding_fingerprint"] == lm.fingerprint()
    assert len(info["sha256"]) == 64
    assert "tensor" not in json.dumps(info)
    assert "weight" not in info
    assert client.get("/v1/prompts/nope").status_code == 404


def test_upload_replace_and_delete(client, lm, tmp_path, prompts_dir):
    data = prompt_bytes(lm, tmp_path)
    r = client.put("/v1/prompts/fresh", content=data, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "fresh"
    assert r.json()["label_words"] == ["yes", "no"]
    assert (prompts_dir / "fresh.safetensors").read_bytes() == data
    r = client.post("/v1/classify", json={"prompt": "fresh", "inputs": ["is it good ?"]})
    assert r.status_code == 200
    assert r.json()["labels"] == ["yes", "no"]
    # replace: 200, and the new weights are used
    data2 = prompt_bytes(lm, tmp_path, length=5, seed=99, labels=("true", "false"))
    r = client.put("/v1/prompts/fresh", content=data2, headers=ADMIN)
    assert r.status_code == 200
    assert r.json()["prompt_length"] == 5
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
    assert body["status"] == "ok"
    assert body["prompts"] == 4
    assert body["batching"] == "mixed"


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
    assert r.status_code == 422
    assert "label" in r.json()["detail"]
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
        assert r.status_code == 413
        assert "limit" in r.json()["detail"]  # whole body over max_request_bytes


def test_upload_errors(client, lm, tmp_path, prompts_dir):
    good = prompt_bytes(lm, tmp_path)
    # tokens: missing 401, wrong 403, admin-only (no admin token configured) 403
    r = client.put("/v1/prompts/x", content=good)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
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
    assert r.status_code == 422
    assert "finite" in r.json()["detail"]
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
        assert r.status_code == 403
        assert "--admin-token" in r.json()["detail"]
        assert c.delete("/v1/prompts/sst2", headers=ADMIN).status_code == 403
        assert c.post("/v1/classify", json={"prompt": "sst2", "inputs": ["a"]}).status_code == 200  # open


def test_api_token(lm, prompts_dir):
    with make_client(lm, prompts_dir, api_token="api-secret") as c:
        body = {"prompt": "sst2", "inputs": ["a"]}
        r = c.post("/v1/classify", json=body)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert c.post("/v1/classify", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert c.post("/v1/classify", json=body, headers={"Authorization": "Basic api-secret"}).status_code == 401
        assert c.post("/v1/classify", json=body, headers={"Authorization": "Bearer api-secret"}).status_code == 200
        assert c.post("/v1/classify", json=body, headers=ADMIN).status_code == 200  # admin may infer too
        assert c.get("/v1/prompts").status_code == 401
        assert c.get("/v1/prompts", headers={"Authorization": "Bearer api-secret"}).status_code == 200
        # the API token does not allow uploads
        assert c.delete("/v1/prompts/sst2", headers={"Authorization": "Bearer api-secret"}).status_code == 403
        # health and metrics stay open
        assert c.get("/healthz").status_code == 200
        assert c.get("/metrics").status_code == 200


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
    assert results[1].status_code == 500
    assert "kaboom" in results[1].json()["detail"]
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


# =========================================================================== metrics, schema, client
def test_metrics_endpoint(client):
    for _ in range(3):
        assert client.post("/v1/classify", json={"prompt": "sst2", "inputs": ["a", "b"]}).status_code == 200
    assert client.post("/v1/classify", json={"prompt": "nope", "inputs": ["a"]}).status_code == 404
    client.get("/v1/prompts/sst2")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert 'softprompt_requests_total{endpoint="/v1/classify",method="POST",status="200"} 3' in text
    assert 'softprompt_requests_total{endpoint="/v1/classify",method="POST",status="404"} 1' in text
    assert 'softprompt_requests_total{endpoint="/v1/prompts/{name}",method="GET",status="200"} 1' in text
    assert 'softprompt_rows_total{kind="classify"} 6' in text
    assert re.search(r'softprompt_batch_rows_count\{kind="classify"\} [1-6]\n', text)
    assert 'softprompt_batch_rows_bucket{kind="classify",le="+Inf"}' in text
    assert re.search(r'softprompt_request_duration_seconds_bucket\{endpoint="/v1/classify",le="0.1"\} \d+', text)
    assert "softprompt_queue_depth 0" in text
    assert "softprompt_prompts_loaded 4" in text
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
    assert "up" in [p["name"] for p in sp.prompts()["prompts"]]
    assert sp.prompt("up")["prompt_length"] == 3
    sp.delete_prompt("up")
    with pytest.raises(ClientError) as err:
        sp.prompt("up")
    assert err.value.status == 404
    assert "softprompt_requests_total" in sp.metrics()


# =========================================================================== settings, ETag / If-Match
@pytest.mark.parametrize("field, value", [
    ("batching", "sometimes"), ("max_batch_size", 0), ("max_batch_size", 2.5), ("max_queue_rows", True),
    ("max_wait_ms", -1), ("max_wait_ms", float("nan")), ("request_timeout_s", 0), ("store_poll_s", -0.5),
    ("max_upload_bytes", "16MB"),
])
def test_bad_settings_raise_config_error_naming_the_field(field, value):
    from softprompt.core.config import ConfigError

    with pytest.raises(ConfigError) as err:
        ServerSettings(**{field: value})
    assert str(err.value).startswith(f"{field}:")


def test_etag_if_match_and_if_none_match(client, lm, tmp_path):
    v1 = prompt_bytes(lm, tmp_path, seed=1)
    v2 = prompt_bytes(lm, tmp_path, seed=2)
    v3 = prompt_bytes(lm, tmp_path, seed=3)
    # create only: If-None-Match: *
    r = client.put("/v1/prompts/etag", content=v1, headers={**ADMIN, "If-None-Match": "*"})
    assert r.status_code == 201
    tag1 = r.headers["etag"]
    assert tag1 == f'"{r.json()["sha256"]}"'
    assert client.get("/v1/prompts/etag").headers["etag"] == tag1
    r = client.put("/v1/prompts/etag", content=v2, headers={**ADMIN, "If-None-Match": "*"})
    assert r.status_code == 412
    assert "already exists" in r.json()["detail"]
    # two admins both read tag1; the first replace wins, the second gets 412 and nothing changes
    r = client.put("/v1/prompts/etag", content=v2, headers={**ADMIN, "If-Match": tag1})
    assert r.status_code == 200
    tag2 = r.headers["etag"]
    assert tag2 != tag1
    r = client.put("/v1/prompts/etag", content=v3, headers={**ADMIN, "If-Match": tag1})
    assert r.status_code == 412
    assert tag2 in r.json()["detail"]
    assert client.get("/v1/prompts/etag").headers["etag"] == tag2
    assert client.put("/v1/prompts/etag", content=v3, headers={**ADMIN, "If-Match": f'"x", {tag2}'}).status_code == 200
    tag3 = client.get("/v1/prompts/etag").headers["etag"]
    assert client.put("/v1/prompts/etag", content=v3, headers={**ADMIN, "If-Match": f"W/{tag3}"}).status_code == 412
    # delete with a stale tag: 412; with the current one: 204; If-Match on a missing prompt: 412
    assert client.delete("/v1/prompts/etag", headers={**ADMIN, "If-Match": tag2}).status_code == 412
    assert client.delete("/v1/prompts/etag", headers={**ADMIN, "If-Match": tag3}).status_code == 204
    assert client.put("/v1/prompts/etag", content=v1, headers={**ADMIN, "If-Match": "*"}).status_code == 412
    # without a precondition (the default): unconditional, as before
    assert client.put("/v1/prompts/etag", content=v1, headers=ADMIN).status_code == 201


def test_require_if_match_gives_428_without_a_precondition(lm, prompts_dir, tmp_path):
    data = prompt_bytes(lm, tmp_path)
    with make_client(lm, prompts_dir, require_if_match=True) as c:
        r = c.put("/v1/prompts/new", content=data, headers=ADMIN)
        assert r.status_code == 428
        assert "If-Match" in r.json()["detail"]
        assert c.delete("/v1/prompts/sst2", headers=ADMIN).status_code == 428
        assert c.put("/v1/prompts/new", content=data, headers={**ADMIN, "If-None-Match": "*"}).status_code == 201
        tag = c.get("/v1/prompts/sst2").headers["etag"]
        assert c.delete("/v1/prompts/sst2", headers={**ADMIN, "If-Match": tag}).status_code == 204


def test_replica_header(lm, prompts_dir):
    with make_client(lm, prompts_dir, replica_id="r7") as c:
        r = c.get("/healthz")
        assert r.headers["x-softprompt-replica"] == "r7"
        assert r.json()["replica"] == "r7"
        assert c.post("/v1/classify", json={"prompt": "nope", "inputs": ["a"]}).headers["x-softprompt-replica"] == "r7"

"""Malformed requests against every endpoint of a live server: never a 5xx, connection kept.

A seeded (deterministic), bounded fuzz of random JSON shapes (NaN / Infinity, deep nesting,
wrong types, huge numbers, lone surrogates, non-JSON bytes), sent over ONE keep-alive
connection: every answer must be a 4xx (or a 2xx where the body happens to be valid) with a
JSON body whose "detail" is readable, and the same connection must serve the next request.
"""
from __future__ import annotations

import json
import random

import httpx
import pytest
import torch
from tiny import tiny_llama

from softprompt.core.prompt_file import metadata_for, save_prompt
from softprompt.serving.app import create_app
from softprompt.serving.background import serve_in_thread
from softprompt.serving.settings import ServerSettings

torch.set_num_threads(1)
ADMIN = {"Authorization": "Bearer adm"}
SEED = 20261127
N_CASES = 240


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    lm = tiny_llama()
    folder = tmp_path_factory.mktemp("prompts")
    tensor = torch.rand(3, lm.hidden_size, generator=torch.Generator().manual_seed(0)) - 0.5
    save_prompt(folder / "sst2.safetensors", tensor, metadata_for(lm, tensor, task="sst2", label_words=["yes", "no"]))
    app = create_app(lm, folder, ServerSettings(admin_token="adm", max_wait_ms=1, max_request_bytes=256 * 1024))
    with serve_in_thread(app) as url:
        yield url


def _scalar(rng: random.Random):
    return rng.choice([
        float("nan"), float("inf"), float("-inf"), 10 ** rng.randint(20, 400), -(10 ** 30), 1e308, -0.0, 0, 1, -1,
        True, False, None, "", "sst2", "a", "x" * rng.randint(0, 300), "\ud800", "é\u0000\n", "yes", "no",
        rng.random(), rng.randint(-5, 5),
    ])


def _value(rng: random.Random, depth: int = 0):
    kind = rng.random()
    if depth > 3 or kind < 0.5:
        return _scalar(rng)
    if kind < 0.75:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["prompt", "inputs", "labels", "input", "targets", "max_new_tokens", "extra", ""]
    return {rng.choice(keys): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _shaped(rng: random.Random) -> dict:
    """A body close to a real one, with some fields replaced by random values."""
    body = {"prompt": "sst2", "inputs": ["a fun movie"], "labels": ["yes", "no"], "input": "a",
            "targets": ["yes"], "max_new_tokens": 2}
    body = {k: v for k, v in body.items() if rng.random() < 0.7}
    for key in list(body) + ["surprise"]:
        if rng.random() < 0.4:
            body[key] = _value(rng)
    return body


def _deep(rng: random.Random) -> bytes:
    depth = rng.choice([50, 500, 5000, 100_000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    return (opener * depth + "1" + closer * depth).encode()


def _body(rng: random.Random) -> tuple[bytes, str | None]:
    r = rng.random()
    if r < 0.45:
        return json.dumps(_shaped(rng)).encode(), "application/json"  # NaN -> NaN, inf -> Infinity
    if r < 0.65:
        return json.dumps(_value(rng)).encode(), rng.choice(["application/json", None])
    if r < 0.75:
        return _deep(rng), "application/json"
    if r < 0.85:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))), rng.choice(
            ["application/json", "application/octet-stream", "text/plain", None])
    return rng.choice([b"{", b"nul", b'{"prompt": "sst2", "inputs": ["a"]', b"\xff\xfe{}", b'"str"', b"[]",
                       b'{"prompt": "sst2", "inputs": [1e999]}', b'{"prompt": -Infinity}',
                       b'{"prompt": "sst2", "inputs": ["a"], "max_new_tokens": 1' + b"0" * 5000 + b"}"]), "application/json"


ENDPOINTS = [("POST", "/v1/classify"), ("POST", "/v1/generate"), ("POST", "/v1/score"),
             ("PUT", "/v1/prompts/{name}"), ("DELETE", "/v1/prompts/{name}"), ("GET", "/v1/prompts/{name}"),
             ("GET", "/v1/prompts"), ("GET", "/healthz"), ("GET", "/metrics"), ("POST", "/v1/prompts/{name}")]
NAMES = ["fuzz", "sst2", "-bad", "a" * 300, "%00", "%F0%9F%98%80", "x.safetensors", "..%2f..%2fetc"]


def test_fuzzed_bodies_never_5xx_and_connection_survives(live):
    rng = random.Random(SEED)
    seen: dict[int, int] = {}
    client_ports = set()
    with httpx.Client(base_url=live, timeout=60) as http:
        for case in range(N_CASES):
            method, path = ENDPOINTS[case % len(ENDPOINTS)]
            path = path.format(name=rng.choice(NAMES))
            content, ctype = _body(rng)
            headers = dict(ADMIN) if rng.random() < 0.8 else {}
            if ctype:
                headers["Content-Type"] = ctype
            r = http.request(method, path, content=content, headers=headers)
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
            where = f"case {case}: {method} {path} {content[:120]!r}"
            assert r.status_code < 500, f"{where} -> {r.status_code} {r.text[:300]}"
            assert r.headers.get("connection", "").lower() != "close", f"{where} closed the connection"
            if r.status_code >= 400:
                detail = r.json()["detail"]
                assert detail and isinstance(detail, str), f"{where}: unreadable detail {detail!r}"
            client_ports.add(r.extensions["network_stream"].get_extra_info("client_addr"))
        health = http.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        client_ports.add(health.extensions["network_stream"].get_extra_info("client_addr"))
        ok = http.post("/v1/classify", json={"prompt": "sst2", "inputs": ["a fun movie"]})
        assert ok.status_code == 200, ok.text
    assert len(client_ports) == 1, f"the keep-alive connection was dropped: {client_ports}"
    assert sum(n for s, n in seen.items() if 400 <= s < 500) > N_CASES // 2  # the fuzz mostly hit error paths


@pytest.mark.parametrize("raw", [
    b'{"prompt": "a", "inputs": NaN}', b'{"prompt": "sst2", "inputs": ["x"], "labels": [Infinity]}',
    b'{"prompt": "sst2", "inputs": ["x"], "max_new_tokens": NaN}',
])
@pytest.mark.parametrize("path", ["/v1/classify", "/v1/generate", "/v1/score"])
def test_nan_in_body_is_422_naming_the_field_and_keeps_the_connection(live, raw, path):
    with httpx.Client(base_url=live, timeout=60) as http:
        r = http.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert isinstance(detail, str)
        assert "body" in detail
        assert any(f in detail for f in ("inputs", "labels", "max_new_tokens", "input", "targets", "extra"))
        assert http.get("/healthz").status_code == 200  # same connection still works

"""The prompt server on Ray Serve (serving/ray_app.py): two replicas of a tiny model over one shared store.

One local Ray session for the module (2 CPUs; replicas of 0.5 CPU each), shut down at the end. The tiny
random model is saved to a temp folder with save_pretrained and loaded by path in every replica, as a
real model would be. Skipped only when Ray Serve is not installed (scripts/setup.sh installs it).
"""
from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch

pytest.importorskip("ray.serve")

from serving_helpers import LABELS, TEXTS, fill_prompts_dir, make_client, prompt_bytes  # noqa: E402

from softprompt.core.config import ConfigError  # noqa: E402
from softprompt.core.loading import load_model  # noqa: E402
from softprompt.errors import SoftPromptError  # noqa: E402
from softprompt.serving.settings import ServerSettings  # noqa: E402

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
ADMIN = {"Authorization": "Bearer admin-secret"}
slow = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lm(model_dir):
    return load_model(str(model_dir))  # the very model every replica loads


@pytest.fixture(scope="module")
def cluster(lm, model_dir, tmp_path_factory):
    import ray
    from ray import serve

    from softprompt.serving.ray_app import ModelSpec, build_app

    folder = fill_prompts_dir(lm, tmp_path_factory.mktemp("store"))
    # replicas are other processes: they import softprompt from this checkout's src/
    path = os.pathsep.join(p for p in [str(REPO / "src"), os.environ.get("PYTHONPATH", "")] if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}})
    port = _free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        settings = ServerSettings(admin_token="admin-secret", max_wait_ms=2, store_poll_s=0.5)
        app = build_app(ModelSpec(str(model_dir), threads=1), str(folder), settings, replicas=2, replica_cpus=0.5)
        serve.run(app, name="softprompt", route_prefix="/")
        yield f"http://127.0.0.1:{port}", folder
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


def _replica(r: httpx.Response) -> str:
    return r.headers["x-softprompt-replica"]


def _expected(lm, folder, name, texts):
    """What the single-process server answers for the same prompt file and inputs."""
    with make_client(lm, folder, store_poll_s=0) as c:
        r = c.post("/v1/classify", json={"prompt": name, "inputs": texts})
        assert r.status_code == 200, r.text
        return r.json()


def _same(got: dict, want: dict) -> bool:
    if got["labels"] != want["labels"] or len(got["results"]) != len(want["results"]):
        return False
    for g, w in zip(got["results"], want["results"]):
        if g["label"] != w["label"] or any(abs(g["scores"][k] - w["scores"][k]) > 1e-4 for k in w["scores"]):
            return False
    return True


@slow
def test_two_replicas_answer_like_the_single_process_server(cluster, lm):
    url, folder = cluster
    seen = set()
    with httpx.Client(base_url=url, timeout=60) as http:
        for name in LABELS:
            want = _expected(lm, folder, name, TEXTS)
            for _ in range(40):
                r = http.post("/v1/classify", json={"prompt": name, "inputs": TEXTS})
                assert r.status_code == 200, r.text
                assert _same(r.json(), want), (r.json(), want)
                seen.add(_replica(r))
                if len(seen) == 2:
                    break
        assert len(seen) == 2, f"only {seen} answered"
        health = http.get("/healthz").json()
        assert health["status"] == "ok"
        assert health["replica"] in seen
        assert sorted(p["name"] for p in http.get("/v1/prompts").json()["prompts"]) == sorted(LABELS)
        # errors pass through unchanged
        r = http.post("/v1/classify", json={"prompt": "nope", "inputs": ["a"]})
        assert r.status_code == 404
        assert "unknown prompt" in r.json()["detail"]


@slow
def test_upload_through_one_replica_is_served_by_the_other(cluster, lm, tmp_path):
    url, folder = cluster
    data = prompt_bytes(lm, tmp_path, name="shared", seed=11, labels=("good", "bad"))
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.put("/v1/prompts/shared", content=data, headers={**ADMIN, "If-None-Match": "*"})
        assert r.status_code == 201, r.text
        writer, etag = _replica(r), r.headers["etag"]
        want = _expected(lm, folder, "shared", TEXTS[:2])
        others = 0
        for _ in range(60):
            r = http.post("/v1/classify", json={"prompt": "shared", "inputs": TEXTS[:2]})
            assert r.status_code == 200, r.text  # on a miss the other replica checks the store at once
            assert _same(r.json(), want)
            others += _replica(r) != writer
            if others >= 2:
                break
        assert others >= 2, "the other replica never answered"
        # ETags are the same on every replica; a stale If-Match is refused whichever replica gets it
        for _ in range(4):
            assert http.get("/v1/prompts/shared").headers["etag"] == etag
        newer = prompt_bytes(lm, tmp_path, name="shared", seed=12, labels=("good", "bad"))
        assert http.put("/v1/prompts/shared", content=newer, headers={**ADMIN, "If-Match": etag}).status_code == 200
        for _ in range(4):
            assert http.put("/v1/prompts/shared", content=data, headers={**ADMIN, "If-Match": etag}).status_code == 412
            assert http.put("/v1/prompts/shared", content=data, headers={**ADMIN, "If-None-Match": "*"}).status_code == 412
        # replaced / deleted through one replica: every replica sees it within store_poll_s (0.5 s) + a load
        time.sleep(1.5)
        want = _expected(lm, folder, "shared", TEXTS[:2])
        for _ in range(6):
            r = http.post("/v1/classify", json={"prompt": "shared", "inputs": TEXTS[:2]})
            assert r.status_code == 200
            assert _same(r.json(), want)
        r = http.delete("/v1/prompts/shared", headers=ADMIN)
        assert r.status_code == 204
        time.sleep(1.5)
        for _ in range(6):
            assert http.post("/v1/classify", json={"prompt": "shared", "inputs": ["a"]}).status_code == 404


@slow
def test_replica_killed_mid_stream_is_restarted_and_nothing_accepted_is_lost(cluster, lm, tmp_path):
    import ray

    url, folder = cluster
    with httpx.Client(base_url=url, timeout=60) as http:
        before = {_replica(http.get("/healthz")) for _ in range(20)}
    want = _expected(lm, folder, "cb", TEXTS[:2])
    statuses: list[tuple[int, str | None, str]] = []
    accepted: dict[str, str] = {}   # uploads answered 201: name -> ETag
    retried: list[bool] = []        # answered by a second replica after the first died holding it
    stop = threading.Event()

    def infer():
        with httpx.Client(base_url=url, timeout=60) as http:
            while not stop.is_set():
                r = http.post("/v1/classify", json={"prompt": "cb", "inputs": TEXTS[:2]})
                ok = r.status_code == 200 and _same(r.json(), want)
                statuses.append((r.status_code, r.headers.get("retry-after"), "same" if ok else r.text[:200]))
                retried.append(r.headers.get("x-softprompt-retried") == "1")

    def upload():
        with httpx.Client(base_url=url, timeout=60) as http:
            i = 0
            while not stop.is_set():
                data = prompt_bytes(lm, tmp_path, name=f"up{i}", seed=100 + i, labels=("yes", "no"))
                r = http.put(f"/v1/prompts/up{i}", content=data, headers=ADMIN)
                if r.status_code == 201:
                    accepted[f"up{i}"] = r.headers["etag"]
                else:
                    statuses.append((r.status_code, r.headers.get("retry-after"), r.text[:200]))
                i += 1

    threads = [threading.Thread(target=infer) for _ in range(3)] + [threading.Thread(target=upload)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if "SERVE_REPLICA" in a["name"] and "softprompt-replica" in a["name"]]
    assert len(names) == 2, names
    ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(60)
    assert statuses and accepted, "no request was made"
    bad = [s for s in statuses if not ((s[0] == 200 and s[2] == "same") or (s[0] == 503 and s[1]))]
    assert not bad, bad[:5]
    # Ray Serve starts a new replica; it loads every accepted prompt from the store
    deadline = time.monotonic() + 60
    fresh: set[str] = set()
    with httpx.Client(base_url=url, timeout=60) as http:
        while time.monotonic() < deadline and not fresh:
            r = http.post("/v1/classify", json={"prompt": "cb", "inputs": TEXTS[:2]})
            assert r.status_code in (200, 503), r.text
            if r.status_code == 200 and _replica(r) not in before:
                assert _same(r.json(), want)
                fresh.add(_replica(r))
            time.sleep(0.2)
        assert fresh, "no restarted replica answered within 60 s"
        listed: dict[str, set[str]] = {}
        for _ in range(40):
            r = http.get("/v1/prompts")
            listed.setdefault(_replica(r), set()).update(
                p["name"] for p in r.json()["prompts"] if p["sha256"] == accepted.get(p["name"], "").strip('"'))
            if len(listed) == 2:
                break
        assert len(listed) == 2
        assert fresh <= set(listed)
        for replica, names_ok in listed.items():
            assert set(accepted) <= names_ok, (replica, set(accepted) - names_ok)
    print(f"\n{len(statuses)} requests during the kill: {sum(s[0] == 200 for s in statuses)} x 200, "
          f"{sum(s[0] == 503 for s in statuses)} x 503 ({sum(retried)} retried on the other replica); "
          f"{len(accepted)} uploads accepted", file=sys.stderr)


class _Handle:
    """A stand-in for the replicas' deployment handle: forward.remote fails `fail` times, then answers."""

    def __init__(self, fail: int, error: BaseException):
        self.fail, self.error, self.calls = fail, error, 0
        self.forward = self

    def remote(self, *args):
        async def answer():
            self.calls += 1
            if self.calls <= self.fail:
                raise self.error
            return 200, [("content-type", "application/json"), ("x-softprompt-replica", "b")], b'{"ok":1}'
        return answer()


def _call_ingress(ingress, method: str, path: str, body: bytes = b""):
    import asyncio

    from starlette.requests import Request

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "root_path": "",
             "headers": [(b"content-length", str(len(body)).encode())], "scheme": "http",
             "server": ("x", 80)}
    return asyncio.run(ingress(Request(scope, receive)))


def test_ingress_retries_safe_requests_once_then_answers_503_with_retry_after():
    from ray.exceptions import ActorDiedError

    from softprompt.serving.ray_app import PromptIngress

    died = ActorDiedError()
    handle = _Handle(1, died)  # the first replica dies holding the request: a second one answers
    r = _call_ingress(PromptIngress(handle), "POST", "/v1/classify", b"{}")
    assert (r.status_code, handle.calls, r.headers["x-softprompt-retried"], r.body) == (200, 2, "1", b'{"ok":1}')
    assert r.headers["x-softprompt-replica"] == "b"
    handle = _Handle(2, died)  # both die: a clear retryable error
    r = _call_ingress(PromptIngress(handle, retry_after_s=3), "POST", "/v1/score", b"{}")
    assert (r.status_code, r.headers["retry-after"], handle.calls) == (503, "3", 2)
    assert "retry after 3 s" in r.body.decode()
    assert "may be retried" in r.body.decode()
    handle = _Handle(1, died)  # uploads are not repeated: the client decides (If-Match / If-None-Match)
    r = _call_ingress(PromptIngress(handle), "PUT", "/v1/prompts/x", b"data")
    assert (r.status_code, r.headers["retry-after"], handle.calls) == (503, "1", 1)
    assert "may or may not have been applied" in r.body.decode()
    r = _call_ingress(PromptIngress(_Handle(0, died), max_body_bytes=3), "PUT", "/v1/prompts/x", b"data")
    assert r.status_code == 413


def test_app_builder_reads_serve_run_arguments_and_the_example_config(tmp_path):
    import yaml

    from softprompt.serving import ray_app

    built = {}

    def fake_build(spec, prompts, settings, **kw):
        built.update(spec=spec, prompts=prompts, settings=settings, **kw)

    orig = ray_app.build_app
    ray_app.build_app = fake_build
    try:
        ray_app.app_builder({"prompts": str(tmp_path), "model": "m", "replicas": "3", "replica_cpus": "0.5",
                             "max_batch_size": "8", "require_if_match": "true", "store_poll_s": "1"})
        assert built["spec"] == ray_app.ModelSpec("m")
        assert built["replicas"] == 3
        assert built["replica_cpus"] == 0.5
        s = built["settings"]
        assert (s.max_batch_size, s.require_if_match, s.store_poll_s) == (8, True, 1.0)
        with pytest.raises(ConfigError, match="colour: unknown setting"):
            ray_app.app_builder({"prompts": "p", "colour": "red"})
        with pytest.raises(ConfigError, match="prompts: required"):
            ray_app.app_builder({})
        with pytest.raises(ConfigError, match="max_batch_size: must be"):
            ray_app.app_builder({"prompts": "p", "max_batch_size": "lots"})
        config = yaml.safe_load((REPO / "examples" / "ray_serve.yaml").read_text())
        (application,) = config["applications"]
        assert application["import_path"] == "softprompt.serving.ray_app:app_builder"
        ray_app.app_builder(application["args"])
        assert built["replicas"] == int(application["args"]["replicas"])
    finally:
        ray_app.build_app = orig


def _serve_cli():
    import typer

    from softprompt.cli.serve import serve_command

    app = typer.Typer()
    app.command("serve")(serve_command)
    app.command("other")(lambda: None)  # so that "serve" stays a subcommand
    return app


def test_serve_replicas_wiring(monkeypatch, tmp_path, model_dir):
    from typer.testing import CliRunner

    from softprompt.serving import ray_app

    calls = {}
    monkeypatch.setattr(ray_app, "serve_until_interrupted", lambda app, **kw: calls.update(app=app, **kw))
    r = CliRunner().invoke(_serve_cli(), ["serve", "--prompts", str(tmp_path), "--model", str(model_dir),
                                          "--replicas", "3", "--port", "8124", "--store-poll-s", "0.25"],
                           env={"SOFTPROMPT_ADMIN_TOKEN": "", "SOFTPROMPT_API_TOKEN": ""})
    assert r.exit_code == 0, (r.output, r.exception)
    assert (calls["host"], calls["port"], calls["address"]) == ("127.0.0.1", 8124, None)
    assert "3 Ray Serve replica(s)" in r.output
    r = CliRunner().invoke(_serve_cli(), ["serve", "--prompts", str(tmp_path), "--replicas", "0"])
    assert "--replicas must be at least 1" in str(r.exception)


def test_replicas_without_ray_give_a_clear_error(monkeypatch, tmp_path):
    import builtins

    from typer.testing import CliRunner

    from softprompt.serving import ray_app

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError, match=r"pip install 'softprompt\[serve-ray\]'"):
        ray_app.require_ray()
    r = CliRunner().invoke(_serve_cli(), ["serve", "--prompts", str(tmp_path), "--replicas", "2"])
    assert isinstance(r.exception, SoftPromptError) and "softprompt[serve-ray]" in str(r.exception), r.exception

"""The prompt server on Ray Serve: N replicas of the same HTTP API over one shared prompt store.

    softprompt serve --prompts /shared/prompts --replicas 2                    # local Ray, one machine
    serve run softprompt.serving.ray_app:app_builder prompts=/shared/prompts replicas=4   # a Ray cluster
    serve deploy examples/ray_serve.yaml                                       # a cluster, from a config file

Two deployments:

- "softprompt-replica" (num_replicas = N): each replica loads the frozen model once and runs
  the single-process server's app in-process (create_app: the same routes, the mixed-task
  batching scheduler, the registry over the shared store). Ray places replicas on the
  cluster's machines, routes each request to one of them and replaces a replica that dies
  (or whose health check fails).
- "softprompt" (the HTTP ingress; no model, 0 CPUs): forwards each HTTP request unchanged to a
  replica through a deployment handle and returns its answer unchanged. If the replica dies
  while holding the request (or none is reachable), side-effect-free requests (GET, HEAD and
  POST /v1/classify, /v1/generate, /v1/score) are sent once more to another replica (the answer
  then carries X-Softprompt-Retried: 1); if that fails too, or the request was an upload or a
  delete, the client gets 503 with Retry-After and a message saying it may retry (an upload
  that got 503 may or may not have been stored: GET it, or retry with If-Match / If-None-Match).

Every response carries X-Softprompt-Replica (which replica answered).

The shared prompt store (store.py): a folder every replica can read (one machine, or a shared
volume) or an fsspec URL (s3://, gs://). Prompts live only there; replicas hold loaded copies.
- An upload through any replica is validated once (by that replica) and written atomically
  under the store's write lock, after its If-Match / If-None-Match is checked against the
  stored bytes (412 otherwise), and only then answered 201/200: an accepted prompt is in the
  store, so a replica that dies afterwards loses nothing; a restarted replica loads every
  prompt from the store before it takes requests.
- Freshness bound: each replica re-lists the store every `store_poll_s` seconds (default 2)
  and, for a name it does not know, checks the store at once before answering 404. So a new
  prompt is served by every replica at once; a replaced or deleted prompt is seen by every
  replica within store_poll_s plus the time to load one file. Until then a replica serves the
  previous complete version; it never serves a half-written file (stores expose whole files
  only) nor one that fails validation.

Ray is optional (`pip install 'softprompt[serve-ray]'`); this module imports it only when called.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from softprompt.core.config import ConfigError
from softprompt.serving.settings import ServerSettings

log = logging.getLogger("softprompt.serving")

INGRESS_NAME = "softprompt"
REPLICA_NAME = "softprompt-replica"
APP_NAME = "softprompt"
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
SAFE_POSTS = {"/v1/classify", "/v1/generate", "/v1/score"}
INSTALL_HINT = "pip install 'softprompt[serve-ray]'"


def require_ray():
    """Import Ray Serve, or explain how to install it."""
    try:
        import ray  # noqa: F401
        from ray import serve
    except ImportError as err:
        raise ConfigError(
            f"replicas: serving on Ray Serve needs Ray, which is not installed: {INSTALL_HINT} "
            f"(or run without --replicas / --ray-address for the single-process server)"
        ) from err
    return serve


@dataclass(frozen=True)
class ModelSpec:
    """How a replica loads the frozen model (picklable): load_model(name, device, dtype).

    name: a built-in name, Hugging Face id, folder or .gguf reachable from every replica's machine.
    """

    name: str = "smollm2"
    device: str = "cpu"
    dtype: str = "auto"
    threads: int | None = None   # torch CPU threads per replica (None: Ray's OMP_NUM_THREADS = replica CPUs)

    def __call__(self):
        import torch

        from softprompt.core.loading import load_model

        if self.threads:
            torch.set_num_threads(self.threads)
        return load_model(self.name, device=self.device, dtype=self.dtype)


def _replica_id() -> str:
    try:
        from ray import serve

        ctx = serve.get_replica_context()
        rid = getattr(getattr(ctx, "replica_id", None), "unique_id", None) or getattr(ctx, "replica_tag", None)
        return str(rid or "local")
    except Exception:  # noqa: BLE001 - outside a replica (direct use)
        return "local"


class PromptReplica:
    """One replica: the frozen model and the single-process server's app, called in-process."""

    def __init__(self, load_model: Callable[[], Any], prompts: str, settings: ServerSettings):
        import httpx

        from softprompt.serving.app import create_app

        self.replica_id = _replica_id()
        self.settings = dataclasses.replace(settings, replica_id=self.replica_id)
        lm = load_model()
        self.app = create_app(lm, prompts, self.settings)  # loads every stored prompt before taking requests
        self.state = self.app.state.server
        self.state.start()  # httpx's ASGITransport runs no lifespan: start the scheduler and the poller here
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://replica",
                                      timeout=None)
        log.info("replica %s serving %d prompt(s) from %s", self.replica_id, len(self.state.registry),
                 self.state.registry.store.describe())

    async def forward(self, method: str, path: str, query: str, headers: list[tuple[str, str]],
                      body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Run one HTTP request through this replica's app; (status, headers, body)."""
        url = path + (f"?{query}" if query else "")
        sent = [(k, v) for k, v in headers if k.lower() not in HOP_HEADERS]
        response = await self.http.request(method, url, headers=sent, content=body)
        kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in HOP_HEADERS]
        return response.status_code, kept, response.content

    def check_health(self) -> None:
        """Ray Serve calls this periodically; raising makes it replace the replica."""
        if self.state.scheduler.closed:
            raise RuntimeError("the batch scheduler is closed")

    def __del__(self):
        state = getattr(self, "state", None)
        if state is not None:
            state.close()


def _json(status: int, detail: str, headers: dict[str, str] | None = None):
    from starlette.responses import Response

    return Response(json.dumps({"detail": detail}), status_code=status, media_type="application/json",
                    headers=headers)


class PromptIngress:
    """The HTTP entry point: forwards each request to a replica (see the module docstring)."""

    def __init__(self, replicas, retry_after_s: int = 1, max_body_bytes: int = 32 * 1024 * 1024):
        self.replicas = replicas
        self.retry_after_s = retry_after_s
        self.max_body_bytes = max_body_bytes
        self.replica_deaths = 0

    async def _read_body(self, request) -> bytes | None:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def __call__(self, request):
        from ray.exceptions import RayTaskError
        from starlette.responses import Response

        body = await self._read_body(request)
        if body is None:
            return _json(413, f"request body is over the limit of {self.max_body_bytes} bytes")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        method, path = request.method, request.url.path
        safe = method in ("GET", "HEAD") or (method == "POST" and path in SAFE_POSTS)
        attempts = 2 if safe else 1
        error: BaseException | None = None
        for attempt in range(attempts):
            try:
                status, out_headers, content = await self.replicas.forward.remote(
                    method, path, request.url.query, headers, body)
            except RayTaskError as err:  # the replica raised (a bug): not a replica failure
                log.error("request %s %s failed in its replica: %s", method, path, err)
                return _json(500, f"internal error in the replica: {type(err).__name__}")
            except Exception as err:  # noqa: BLE001 - RayActorError (died), none reachable, back-pressure
                self.replica_deaths += 1
                error = err
                log.warning("request %s %s lost its replica: %s: %s", method, path, type(err).__name__, err)
                continue
            response = Response(content, status_code=status)
            response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out_headers] + [
                (b"content-length", str(len(content)).encode())]
            if attempt:  # answered by a second replica after the first one died
                response.raw_headers.append((b"x-softprompt-retried", b"1"))
            return response
        again = "the request may be retried" if safe else (
            "the upload/delete may or may not have been applied: GET the prompt, or retry with If-Match / "
            "If-None-Match")
        return _json(503, f"the replica serving this request stopped or is unavailable ({type(error).__name__}); "
                          f"Ray Serve is replacing it: retry after {self.retry_after_s} s ({again})",
                     {"Retry-After": str(self.retry_after_s)})


def build_app(load_model: Callable[[], Any], prompts: str, settings: ServerSettings | None = None, *,
              replicas: int = 2, replica_cpus: float = 1.0, max_ongoing_requests: int = 256,
              retry_after_s: int = 1, ray_actor_options: dict | None = None):
    """The Ray Serve application (pass it to serve.run): `replicas` model replicas behind one ingress.

    load_model: a picklable callable returning the PromptedLM (e.g. ModelSpec("smollm2")).
    prompts:    the shared store: a folder every replica can reach, or an fsspec URL (s3://...).
    max_ongoing_requests: requests one replica holds at once (its scheduler batches among them).
    """
    serve = require_ray()
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ConfigError(f"replicas: must be an integer of at least 1, got {replicas!r}")
    if replica_cpus < 0:
        raise ConfigError(f"replica_cpus: must be >= 0, got {replica_cpus!r}")
    if "://" not in str(prompts):
        prompts = str(Path(prompts).expanduser().resolve())  # replicas do not share our working directory
    settings = settings or ServerSettings()
    options = {"num_cpus": replica_cpus, **(ray_actor_options or {})}
    replica = serve.deployment(
        PromptReplica, name=REPLICA_NAME, num_replicas=replicas, ray_actor_options=options,
        max_ongoing_requests=max_ongoing_requests, health_check_period_s=2, health_check_timeout_s=30,
    )
    ingress = serve.deployment(
        PromptIngress, name=INGRESS_NAME, num_replicas=1, ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=max(1000, max_ongoing_requests * replicas),
    )
    max_body = max(settings.max_upload_bytes, settings.max_request_bytes) + 1024
    return ingress.bind(replica.bind(load_model, str(prompts), settings), retry_after_s, max_body)


def _parse(key: str, raw: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return str(raw).lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: must be a {type(default).__name__}, got {raw!r}") from None
    return raw


def app_builder(args: dict[str, Any]):
    """For `serve run softprompt.serving.ray_app:app_builder key=value ...` and serve config files.

    Keys: prompts (required), model (smollm2), replicas (2), device (cpu), dtype (auto),
    threads, replica_cpus (1), and any ServerSettings field (admin_token, api_token,
    max_batch_size, max_wait_ms, store_poll_s, require_if_match, ...). Unknown keys are errors.
    """
    args = dict(args)
    prompts = args.pop("prompts", None)
    if not prompts:
        raise ConfigError("prompts: required (a folder every replica can reach, or an fsspec URL such as "
                          "s3://bucket/prompts)")
    threads = args.pop("threads", None)
    spec = ModelSpec(name=str(args.pop("model", "smollm2")), device=str(args.pop("device", "cpu")),
                     dtype=str(args.pop("dtype", "auto")),
                     threads=_parse("threads", threads, 0) if threads is not None else None)
    replicas = _parse("replicas", args.pop("replicas", 2), 0)
    replica_cpus = _parse("replica_cpus", args.pop("replica_cpus", 1.0), 0.0)
    fields = {f.name: f for f in dataclasses.fields(ServerSettings) if f.name != "replica_id"}
    values: dict[str, Any] = {}
    for key, raw in args.items():
        if key not in fields:
            raise ConfigError(f"{key}: unknown setting (known: prompts, model, replicas, device, dtype, threads, "
                              f"replica_cpus, {', '.join(sorted(fields))})")
        values[key] = _parse(key, raw, fields[key].default)
    return build_app(spec, str(prompts), ServerSettings(**values), replicas=replicas, replica_cpus=replica_cpus)


def serve_until_interrupted(app, *, host: str = "127.0.0.1", port: int = 8000, address: str | None = None,
                            on_ready: Callable[[], None] | None = None) -> None:
    """Start (address None) or join (address "auto" / "ray://...") a Ray cluster, run `app` on
    http://host:port, and block until Ctrl-C; then shut Serve down (and Ray, if started here)."""
    serve = require_ray()
    import ray

    ray.init(address=address, ignore_reinit_error=True)
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(app, name=APP_NAME, route_prefix="/")
        if on_ready is not None:
            on_ready()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            if address is None:
                serve.shutdown()
            else:  # a shared cluster: remove only this application
                serve.delete(APP_NAME)
        finally:
            ray.shutdown()

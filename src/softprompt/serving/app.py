"""The prompt server: one frozen model, every prompt in a store, mixed-task batches.

    app = create_app(lm, "prompts/", ServerSettings(admin_token="..."))
    uvicorn.run(app, host="127.0.0.1", port=8000)

The routes are an APIRouter (routes.py); this module wires one server's state (registry,
scheduler, metrics), the middleware (body limits, metrics, a last-resort error catcher) and
the error handlers around it.

Endpoints (JSON; errors are {"detail": "<readable message>"}):
    POST   /v1/classify          rank classification over labels (default: the prompt's label_words)
    POST   /v1/generate          greedy generation
    POST   /v1/score             log-likelihood of target strings
    GET    /v1/prompts           served prompts' metadata; GET /v1/prompts/{name} one of them (+ ETag)
    PUT    /v1/prompts/{name}    upload a prompt file (raw safetensors bytes; admin token; If-Match)
    DELETE /v1/prompts/{name}    remove a prompt (admin token; If-Match)
    GET    /healthz, /metrics    liveness and Prometheus metrics (no token)

Statuses: 401 no token / 403 wrong token (inference needs the API token only when one is
configured; uploads and deletes always need the admin token), 404 unknown prompt, 409 prompt
for another model, 412 If-Match / If-None-Match failed, 413 input/batch/upload over a limit,
422 malformed body (the message names the field; the input is never echoed), 428 precondition
required (--require-if-match), 500 inference failed (only the requests of that batch), 503 queue
full or shutting down (with Retry-After), 504 timed out. Whatever goes wrong, the answer is
JSON and the keep-alive connection stays usable.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from softprompt.core.model import PromptedLM
from softprompt.serving.errors import ServingError
from softprompt.serving.metrics import Metrics
from softprompt.serving.registry import PromptRegistry
from softprompt.serving.routes import ServerState, router
from softprompt.serving.scheduler import BatchScheduler
from softprompt.serving.settings import ServerSettings
from softprompt.serving.store import PromptStore

log = logging.getLogger("softprompt.serving")

API_VERSION = "1"
DESCRIPTION = """\
Serves many soft prompts (prompt tuning, Lester et al. 2021) on **one frozen language model**.
Concurrent requests for any mix of prompts are gathered into one batch (up to the maximum batch
size or wait time) and run as a single forward pass in which each row carries its own prompt.

Inference endpoints need `Authorization: Bearer <api token>` only when the server has one;
uploading or deleting prompts always needs the admin token.
"""
MAX_DETAIL_ERRORS = 5


class SafeJSONResponse(JSONResponse):
    """JSON that always encodes: ASCII escapes (lone surrogates survive), NaN/inf as strings."""

    def render(self, content: Any) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()
        except (ValueError, TypeError, RecursionError):
            return json.dumps(_plain(content), ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def _plain(value: Any, depth: int = 0) -> Any:
    """Something json.dumps(allow_nan=False) accepts, for error bodies only."""
    if depth > 20:
        return "..."
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    return repr(value)


def error_response(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> SafeJSONResponse:
    return SafeJSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _loc(loc: Any) -> list[str | int]:
    return [p if isinstance(p, int) and not isinstance(p, bool) else str(p) for p in (loc or ())]


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """One readable line naming each bad field, and the issues without the offending input."""
    issues = [{"loc": _loc(e.get("loc")), "msg": str(e.get("msg", "invalid"))[:300], "type": str(e.get("type", ""))}
              for e in errors]
    parts = []
    for issue in issues[:MAX_DETAIL_ERRORS]:
        where = ".".join(str(p) for p in issue["loc"]) or "body"
        msg = str(issue["msg"])
        if issue["type"] == "model_attributes_type" and issue["loc"] == ["body"]:
            msg += " (send a JSON object with Content-Type: application/json)"
        parts.append(f"{where}: {msg}")
    more = f" (and {len(issues) - MAX_DETAIL_ERRORS} more)" if len(issues) > MAX_DETAIL_ERRORS else ""
    return "invalid request: " + "; ".join(parts) + more, issues


# ------------------------------------------------------------------------ middleware
class BodyLimitMiddleware:
    """413 for bodies over the limit: early on Content-Length, else while reading the stream."""

    def __init__(self, app, settings: ServerSettings):
        self.app = app
        self.settings = settings

    def _limit(self, scope) -> int:
        if scope.get("method") == "PUT" and scope.get("path", "").startswith("/v1/prompts/"):
            return self.settings.max_upload_bytes
        return self.settings.max_request_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self._limit(scope)
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = 0
                if length > limit:
                    response = error_response(413, f"request body is {length} bytes; the limit is {limit}")
                    return await response(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body is over the limit of {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


class CatchAllMiddleware:
    """Answers any exception no handler took with a JSON 500, without re-raising it, so the
    server keeps the client's keep-alive connection (Starlette's own handler re-raises, and the
    ASGI server then drops the connection)."""

    def __init__(self, app, replica_id: str | None = None):
        self.app = app
        self.replica_id = replica_id

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if self.replica_id:
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"], (b"x-softprompt-replica", self.replica_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as err:  # noqa: BLE001 - a bug must cost one request, not the connection
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = error_response(500, f"internal error: {type(err).__name__}: {err}")
            await response(scope, receive, tracking_send)


class MetricsMiddleware:
    """Counts every response by endpoint (route template), method and status, with latency."""

    def __init__(self, app, metrics: Metrics, label):
        self.app = app
        self.metrics = metrics
        self.label = label

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        started = loop.time()
        status = 500
        self.metrics.request_started()

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.request_finished(self.label(scope), scope.get("method", ""), status, loop.time() - started)


# ------------------------------------------------------------------------ the app
def build_state(lm: PromptedLM, prompts: "str | Path | PromptStore", settings: ServerSettings) -> ServerState:
    """The registry (over the prompt store), scheduler and metrics of one server."""
    metrics = Metrics()
    registry = PromptRegistry(prompts, lm, settings.max_upload_bytes, poll_s=settings.store_poll_s,
                              require_if_match=settings.require_if_match)
    scheduler = BatchScheduler(
        lm, max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms,
        batching=settings.batching, max_queue_rows=settings.max_queue_rows, metrics=metrics,
    )
    metrics.add_gauge("softprompt_queue_depth", "Rows waiting for a batch.", scheduler.queue_depth)
    metrics.add_gauge("softprompt_prompts_loaded", "Prompts served.", lambda: len(registry))
    return ServerState(lm=lm, settings=settings, registry=registry, scheduler=scheduler, metrics=metrics)


def create_app(
    lm: PromptedLM,
    prompts: "str | Path | PromptStore",
    settings: ServerSettings | None = None,
    state: ServerState | None = None,
) -> FastAPI:
    """Build the server for `lm` over `prompts`: a folder (created if missing), an fsspec URL
    (s3://..., see store.py) or a PromptStore. `state`: an already built ServerState.

    The batch worker and the store poller start with the app (or the worker on the first
    request) and stop at shutdown. app.state.server is the ServerState; app.state also holds
    lm, settings, registry, scheduler and metrics.
    """
    settings = settings or ServerSettings()
    state = state or build_state(lm, prompts, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.start()
        try:
            yield
        finally:
            await run_in_threadpool(state.close)

    app = FastAPI(
        title="softprompt server",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "inference", "description": "Classify, generate and score with a named prompt."},
            {"name": "prompts", "description": "The prompt registry (uploads and deletes need the admin token)."},
            {"name": "operations", "description": "Health and Prometheus metrics."},
        ],
    )
    app.state.server = state
    app.state.lm = state.lm
    app.state.settings = state.settings
    app.state.registry = state.registry
    app.state.scheduler = state.scheduler
    app.state.metrics = state.metrics
    app.include_router(router)

    def endpoint_label(scope) -> str:
        route = scope.get("route")
        if route is not None and getattr(route, "path", None):
            return route.path
        for candidate in app.router.routes:
            match, _ = candidate.matches(scope)
            if match != Match.NONE:
                return getattr(candidate, "path", "other")
        return "other"

    app.add_middleware(BodyLimitMiddleware, settings=state.settings)
    app.add_middleware(CatchAllMiddleware, replica_id=state.settings.replica_id)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, label=endpoint_label)  # outermost

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, err: ServingError):
        headers = {}
        if err.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if err.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
        return error_response(err.status, err.message, headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError):
        detail, issues = validation_message(list(err.errors()))
        return error_response(422, detail, errors=issues)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        detail = err.detail if isinstance(err.detail, str) else json.dumps(_plain(err.detail))
        return error_response(err.status_code, detail, getattr(err, "headers", None))

    return app

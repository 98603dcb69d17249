"""The prompt server: one frozen model, every prompt in a folder, mixed-task batches.

    app = create_app(lm, "prompts/", ServerSettings(admin_token="..."))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints (JSON; errors are {"detail": ...}):
    POST   /v1/classify          rank classification over labels (default: the prompt's label_words)
    POST   /v1/generate          greedy generation
    POST   /v1/score             log-likelihood of target strings
    GET    /v1/prompts           served prompts' metadata; GET /v1/prompts/{name} one of them
    PUT    /v1/prompts/{name}    upload a prompt file (raw safetensors bytes; admin token)
    DELETE /v1/prompts/{name}    remove a prompt (admin token)
    GET    /healthz, /metrics    liveness and Prometheus metrics (no token)

Statuses: 401 no token / 403 wrong token (inference needs the API token only when one is
configured; uploads and deletes always need the admin token), 404 unknown prompt, 409 prompt
for another model, 413 input/batch/upload over a limit, 422 malformed body, 500 inference
failed (only the requests of that batch), 503 queue full or shutting down, 504 timed out.
"""
from __future__ import annotations

import asyncio
import logging
import math
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Sequence

from fastapi import Depends, FastAPI, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
from starlette.routing import Match

from softprompt.core.model import PromptedLM
from softprompt.serving import schemas as S
from softprompt.serving.errors import RequestTimedOut, ServingError, TooLarge
from softprompt.serving.metrics import CONTENT_TYPE, Metrics
from softprompt.serving.registry import PromptRegistry, RegisteredPrompt
from softprompt.serving.scheduler import BatchScheduler, Row
from softprompt.serving.settings import ServerSettings

log = logging.getLogger("softprompt.serving")

API_VERSION = "1"
DESCRIPTION = """\
Serves many soft prompts (prompt tuning, Lester et al. 2021) on **one frozen language model**.
Concurrent requests for any mix of prompts are gathered into one batch (up to the maximum batch
size or wait time) and run as a single forward pass in which each row carries its own prompt.

Inference endpoints need `Authorization: Bearer <api token>` only when the server has one;
uploading or deleting prompts always needs the admin token.
"""


def _error(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "Missing bearer token.", 403: "Wrong token, or uploads disabled (no admin token configured).",
        404: "Unknown prompt.", 409: "The prompt was trained for another model.",
        413: "An input, the number of inputs/labels, max_new_tokens or the upload is over the server's limit.",
        422: "Malformed request body or prompt file.", 500: "Inference failed for this batch.",
        503: "Queue full or shutting down; retry later.", 504: "The request was not answered in time.",
    }
    return {c: {"model": S.ErrorResponse, "description": text[c]} for c in codes}


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
                    response = JSONResponse(
                        {"detail": f"request body is {length} bytes; the limit is {limit}"}, status_code=413)
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


# ------------------------------------------------------------------------ helpers
def _softmax(values: Sequence[float]) -> list[float]:
    top = max(values)
    if math.isinf(top) and top < 0:
        return [1.0 / len(values)] * len(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def _finite(x: float) -> float:
    # JSON has no -inf; a label the model finds impossible gets the most negative float.
    if math.isnan(x):
        return -1.7976931348623157e308
    return max(min(x, 1.7976931348623157e308), -1.7976931348623157e308)


def create_app(
    lm: PromptedLM,
    prompts_dir: str | Path,
    settings: ServerSettings | None = None,
) -> FastAPI:
    """Build the server for `lm` over the prompt folder `prompts_dir` (created if missing).

    The batch worker starts with the app (or on the first request) and stops at shutdown.
    app.state holds lm, settings, registry, scheduler and metrics.
    """
    settings = settings or ServerSettings()
    metrics = Metrics()
    registry = PromptRegistry(prompts_dir, lm, settings.max_upload_bytes)
    scheduler = BatchScheduler(
        lm, max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms,
        batching=settings.batching, max_queue_rows=settings.max_queue_rows, metrics=metrics,
    )
    metrics.add_gauge("softprompt_queue_depth", "Rows waiting for a batch.", scheduler.queue_depth)
    metrics.add_gauge("softprompt_prompts_loaded", "Prompts served.", lambda: len(registry))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler.start()
        try:
            yield
        finally:
            await run_in_threadpool(scheduler.close)

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
    app.state.lm = lm
    app.state.settings = settings
    app.state.registry = registry
    app.state.scheduler = scheduler
    app.state.metrics = metrics

    def endpoint_label(scope) -> str:
        route = scope.get("route")
        if route is not None and getattr(route, "path", None):
            return route.path
        for candidate in app.router.routes:
            match, _ = candidate.matches(scope)
            if match != Match.NONE:
                return getattr(candidate, "path", "other")
        return "other"

    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(MetricsMiddleware, metrics=metrics, label=endpoint_label)  # outermost

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, err: ServingError):
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse({"detail": err.message}, status_code=err.status, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, err: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {type(err).__name__}: {err}"}, status_code=500)

    # -------------------------------------------------------------------- auth
    bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")

    def _check(creds: HTTPAuthorizationCredentials | None, accepted: Sequence[str]) -> None:
        if creds is None or not creds.credentials:
            raise ServingError("missing bearer token (Authorization: Bearer <token>)", status=401)
        given = creds.credentials.encode()
        if not any(secrets.compare_digest(given, token.encode()) for token in accepted):
            raise ServingError("invalid token", status=403)

    def require_api(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if settings.api_token is None:
            return
        _check(creds, [t for t in (settings.api_token, settings.admin_token) if t])

    def require_admin(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if settings.admin_token is None:
            raise ServingError(
                "prompt uploads and deletes are disabled: start the server with --admin-token "
                "(or SOFTPROMPT_ADMIN_TOKEN)", status=403)
        _check(creds, [settings.admin_token])

    # -------------------------------------------------------------------- limits
    def check_texts(texts: Sequence[str], what: str, max_count: int, count_flag: str) -> None:
        if len(texts) > max_count:
            raise TooLarge(f"{len(texts)} {what} in one request; the limit is {max_count} ({count_flag})")
        for i, text in enumerate(texts):
            if len(text) > settings.max_input_chars:
                raise TooLarge(f"{what}[{i}] is {len(text)} characters; the limit is "
                               f"{settings.max_input_chars} (--max-input-chars)")

    def check_options(options: Sequence[str], what: str) -> None:
        check_texts(options, what, settings.max_labels, "max_labels")
        for i, opt in enumerate(options):
            if not opt.strip():
                raise ServingError(f"{what}[{i}] is empty", status=422)
        if len(set(options)) != len(options):
            raise ServingError(f"{what} must be distinct, got {list(options)}", status=422)

    async def run_rows(rows: list[Row]) -> list[Any]:
        job = scheduler.submit(rows)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job.future), settings.request_timeout_s)
        except asyncio.TimeoutError:
            job.cancel()
            raise RequestTimedOut(f"no answer within {settings.request_timeout_s:g} s") from None
        except asyncio.CancelledError:  # client went away
            job.cancel()
            raise

    def info(entry: RegisteredPrompt) -> S.PromptInfo:
        return S.PromptInfo(**entry.info())

    # -------------------------------------------------------------------- inference
    @app.post("/v1/classify", response_model=S.ClassifyResponse, tags=["inference"],
              summary="Classify inputs by ranking label log-likelihoods",
              dependencies=[Depends(require_api)], responses=_error(401, 403, 404, 409, 413, 422, 500, 503, 504))
    async def classify(body: S.ClassifyRequest) -> S.ClassifyResponse:
        check_texts(body.inputs, "inputs", settings.max_inputs_per_request, "--max-inputs-per-request")
        entry = registry.get(body.prompt)
        labels = body.labels if body.labels is not None else entry.metadata.label_words
        if not labels:
            raise ServingError(f"prompt {entry.name!r} has no label_words in its metadata; pass labels", status=422)
        check_options(labels, "labels")
        options = tuple(labels)
        rows = [Row("classify", entry.name, entry.tensor, text, options) for text in body.inputs]
        scores = await run_rows(rows)
        results = []
        for row_scores in scores:
            probs = _softmax(row_scores)
            best = max(range(len(options)), key=lambda j: row_scores[j])
            results.append(S.Classification(
                label=options[best],
                scores={o: _finite(s) for o, s in zip(options, row_scores)},
                probabilities=dict(zip(options, probs)),
            ))
        return S.ClassifyResponse(prompt=entry.name, labels=list(options), results=results)

    @app.post("/v1/generate", response_model=S.GenerateResponse, tags=["inference"],
              summary="Generate a continuation of each input (greedy)",
              dependencies=[Depends(require_api)], responses=_error(401, 403, 404, 409, 413, 422, 500, 503, 504))
    async def generate(body: S.GenerateRequest) -> S.GenerateResponse:
        check_texts(body.inputs, "inputs", settings.max_inputs_per_request, "--max-inputs-per-request")
        if body.max_new_tokens > settings.max_new_tokens:
            raise TooLarge(f"max_new_tokens is {body.max_new_tokens}; the limit is {settings.max_new_tokens}")
        entry = registry.get(body.prompt)
        rows = [Row("generate", entry.name, entry.tensor, text, (), body.max_new_tokens) for text in body.inputs]
        texts = await run_rows(rows)
        return S.GenerateResponse(prompt=entry.name, results=[S.Generation(text=t) for t in texts])

    @app.post("/v1/score", response_model=S.ScoreResponse, tags=["inference"],
              summary="Log-likelihood of target strings given an input",
              dependencies=[Depends(require_api)], responses=_error(401, 403, 404, 409, 413, 422, 500, 503, 504))
    async def score(body: S.ScoreRequest) -> S.ScoreResponse:
        check_texts([body.input], "input", 1, "")
        check_options(body.targets, "targets")
        entry = registry.get(body.prompt)
        [scores] = await run_rows([Row("score", entry.name, entry.tensor, body.input, tuple(body.targets))])
        return S.ScoreResponse(
            prompt=entry.name,
            results=[S.TargetScore(target=t, log_likelihood=_finite(s)) for t, s in zip(body.targets, scores)],
        )

    # -------------------------------------------------------------------- prompts
    @app.get("/v1/prompts", response_model=S.PromptList, tags=["prompts"], summary="List served prompts",
             dependencies=[Depends(require_api)], responses=_error(401, 403))
    async def list_prompts() -> S.PromptList:
        return S.PromptList(model=lm.model_id, prompts=[info(e) for e in registry.list()],
                            unavailable=registry.unavailable_list())

    @app.get("/v1/prompts/{name}", response_model=S.PromptInfo, tags=["prompts"],
             summary="One prompt's metadata (no weights)",
             dependencies=[Depends(require_api)], responses=_error(401, 403, 404, 409, 422))
    async def get_prompt(name: str = PathParam(..., description="Prompt name.", examples=["sst2"])) -> S.PromptInfo:
        return info(registry.get(name))

    @app.put("/v1/prompts/{name}", response_model=S.PromptInfo, tags=["prompts"],
             summary="Upload (create or replace) a prompt file",
             description="The body is the raw prompt file (safetensors with softprompt metadata), e.g. "
                         "`curl -X PUT --data-binary @sst2.safetensors -H 'Authorization: Bearer $TOKEN' "
                         ".../v1/prompts/sst2`. It is validated (format, shape, finite floats, model "
                         "fingerprint, size) and written atomically. 201 when created, 200 when replaced.",
             status_code=201, dependencies=[Depends(require_admin)],
             responses={201: {"description": "Created a new prompt."},
                        200: {"model": S.PromptInfo, "description": "Replaced an existing prompt."},
                        **_error(401, 403, 409, 413, 422)},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def put_prompt(
        request: Request, response: Response,
        name: str = PathParam(..., description="Prompt name (letters, digits, '.', '_', '-').", examples=["sst2"]),
    ) -> S.PromptInfo:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_upload_bytes:
                raise TooLarge(f"prompt file is over the limit of {settings.max_upload_bytes} bytes")
            chunks.append(chunk)
        entry, created = await run_in_threadpool(registry.put, name, b"".join(chunks))
        response.status_code = 201 if created else 200
        return info(entry)

    @app.delete("/v1/prompts/{name}", status_code=204, tags=["prompts"], summary="Delete a prompt",
                dependencies=[Depends(require_admin)], responses=_error(401, 403, 404),
                response_class=Response)
    async def delete_prompt(name: str = PathParam(..., description="Prompt name.", examples=["sst2"])) -> Response:
        await run_in_threadpool(registry.delete, name)
        return Response(status_code=204)

    # -------------------------------------------------------------------- operations
    @app.get("/healthz", response_model=S.Health, tags=["operations"], summary="Liveness and basic state")
    async def healthz() -> S.Health:
        return S.Health(
            status="stopping" if scheduler.closed else "ok",
            model=lm.model_id, device=str(lm.device), prompts=len(registry),
            queue_depth=scheduler.queue_depth(), batching=settings.batching,
            max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms,
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics (text format 0.0.4)",
             response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format."}})
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    return app

"""The prompt server's HTTP routes, as one FastAPI APIRouter.

Every route reads the per-server state (model, settings, registry, scheduler, metrics) from
`request.app.state.server` (a ServerState), so the same router serves the single-process
server and every Ray Serve replica (serving/ray_app.py); app.py adds the middleware and the
error handlers around it.
"""
from __future__ import annotations

import asyncio
import math
import secrets
from dataclasses import dataclass
from typing import Any, Sequence

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from softprompt.core.model import PromptedLM
from softprompt.core.scoring import best_option
from softprompt.serving import schemas as S
from softprompt.serving.errors import PromptNotFound, RequestTimedOut, ServingError, TooLarge
from softprompt.serving.metrics import CONTENT_TYPE, Metrics
from softprompt.serving.registry import PromptRegistry, RegisteredPrompt
from softprompt.serving.scheduler import BatchScheduler, Row
from softprompt.serving.settings import ServerSettings
from softprompt.serving.store import Precondition
from softprompt.tasks.registry import format_inputs

MAX_FLOAT = 1.7976931348623157e308


@dataclass
class ServerState:
    """What the routes need: one per server process (or Ray Serve replica)."""

    lm: PromptedLM
    settings: ServerSettings
    registry: PromptRegistry
    scheduler: BatchScheduler
    metrics: Metrics

    def start(self) -> None:
        self.scheduler.start()
        self.registry.start_polling()

    def close(self) -> None:
        self.registry.stop_polling()
        self.scheduler.close()


def get_state(request: Request) -> ServerState:
    return request.app.state.server


def _error(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "Missing bearer token.", 403: "Wrong token, or uploads disabled (no admin token configured).",
        404: "Unknown prompt.", 409: "The prompt was trained for another model.",
        412: "If-Match / If-None-Match did not hold: the prompt was changed by someone else.",
        413: "An input, the number of inputs/labels, max_new_tokens or the upload is over the server's limit.",
        422: "Malformed request body or prompt file.",
        428: "This server requires If-Match (or If-None-Match: *) on uploads and deletes.",
        500: "Inference failed for this batch.",
        503: "Queue full, shutting down, or (Ray Serve) the replica died; retry after Retry-After seconds.",
        504: "The request was not answered in time.",
    }
    return {c: {"model": S.ErrorResponse, "description": text[c]} for c in codes}


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
        return -MAX_FLOAT
    return max(min(x, MAX_FLOAT), -MAX_FLOAT)


# ------------------------------------------------------------------------ auth
bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")


def _check(creds: HTTPAuthorizationCredentials | None, accepted: Sequence[str]) -> None:
    if creds is None or not creds.credentials:
        raise ServingError("missing bearer token (Authorization: Bearer <token>)", status=401)
    given = creds.credentials.encode("utf-8", "surrogateescape")
    if not any(secrets.compare_digest(given, token.encode()) for token in accepted):
        raise ServingError("invalid token", status=403)


def require_api(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    settings = get_state(request).settings
    if settings.api_token is None:
        return
    _check(creds, [t for t in (settings.api_token, settings.admin_token) if t])


def require_admin(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    settings = get_state(request).settings
    if settings.admin_token is None:
        raise ServingError(
            "prompt uploads and deletes are disabled: start the server with --admin-token "
            "(or SOFTPROMPT_ADMIN_TOKEN)", status=403)
    _check(creds, [settings.admin_token])


# ------------------------------------------------------------------------ limits
def check_texts(settings: ServerSettings, texts: Sequence[str], what: str, max_count: int, count_flag: str) -> None:
    if len(texts) > max_count:
        raise TooLarge(f"{len(texts)} {what} in one request; the limit is {max_count} ({count_flag})")
    for i, text in enumerate(texts):
        if len(text) > settings.max_input_chars:
            raise TooLarge(f"{what}[{i}] is {len(text)} characters; the limit is "
                           f"{settings.max_input_chars} (--max-input-chars)")


def check_options(settings: ServerSettings, options: Sequence[str], what: str) -> None:
    check_texts(settings, options, what, settings.max_labels, "max_labels")
    for i, opt in enumerate(options):
        if not opt.strip():
            raise ServingError(f"{what}[{i}] is empty", status=422)
    if len(set(options)) != len(options):
        raise ServingError(f"{what} must be distinct, got {list(options)}", status=422)


async def lookup(state: ServerState, name: str) -> RegisteredPrompt:
    """The prompt `name`; on a miss, look in the shared store (in a worker thread) before 404."""
    try:
        return state.registry.get(name)
    except PromptNotFound:
        return await run_in_threadpool(state.registry.get, name, True)


async def run_rows(state: ServerState, rows: list[Row]) -> list[Any]:
    job = state.scheduler.submit(rows)
    timeout = state.settings.request_timeout_s
    try:
        return await asyncio.wait_for(asyncio.wrap_future(job.future), timeout)
    except asyncio.TimeoutError:
        job.cancel()
        raise RequestTimedOut(f"no answer within {timeout:g} s") from None
    except asyncio.CancelledError:  # client went away
        job.cancel()
        raise


def _inputs(entry: RegisteredPrompt, texts: list[str], raw: bool) -> list[str]:
    """Each prompt's inputs in the format it was trained with (one-text formats), unless raw."""
    return list(texts) if raw else format_inputs(entry.metadata.task, entry.metadata.task_format, texts)


def info(entry: RegisteredPrompt) -> S.PromptInfo:
    return S.PromptInfo(**entry.info())


router = APIRouter()
INFERENCE_ERRORS = _error(401, 403, 404, 409, 413, 422, 500, 503, 504)


# ------------------------------------------------------------------------ inference
@router.post("/v1/classify", response_model=S.ClassifyResponse, tags=["inference"],
             summary="Classify inputs by ranking label log-likelihoods",
             dependencies=[Depends(require_api)], responses=INFERENCE_ERRORS)
async def classify(body: S.ClassifyRequest, state: ServerState = Depends(get_state)) -> S.ClassifyResponse:
    settings = state.settings
    check_texts(settings, body.inputs, "inputs", settings.max_inputs_per_request, "--max-inputs-per-request")
    entry = await lookup(state, body.prompt)
    labels = body.labels if body.labels is not None else entry.metadata.label_words
    if not labels:
        raise ServingError(f"prompt {entry.name!r} has no label_words in its metadata; pass labels", status=422)
    check_options(settings, labels, "labels")
    options = tuple(labels)
    rows = [Row("classify", entry.name, entry.tensor, text, options, max_input_tokens=entry.metadata.input_tokens)
            for text in _inputs(entry, body.inputs, body.raw)]
    scores = await run_rows(state, rows)
    results = []
    for row_scores in scores:
        probs = _softmax(row_scores)
        best = best_option(row_scores)
        results.append(S.Classification(
            label=options[best],
            scores={o: _finite(s) for o, s in zip(options, row_scores)},
            probabilities=dict(zip(options, probs)),
        ))
    return S.ClassifyResponse(prompt=entry.name, labels=list(options), results=results)


@router.post("/v1/generate", response_model=S.GenerateResponse, tags=["inference"],
             summary="Generate a continuation of each input (greedy)",
             dependencies=[Depends(require_api)], responses=INFERENCE_ERRORS)
async def generate(body: S.GenerateRequest, state: ServerState = Depends(get_state)) -> S.GenerateResponse:
    settings = state.settings
    check_texts(settings, body.inputs, "inputs", settings.max_inputs_per_request, "--max-inputs-per-request")
    if body.max_new_tokens > settings.max_new_tokens:
        raise TooLarge(f"max_new_tokens is {body.max_new_tokens}; the limit is {settings.max_new_tokens}")
    entry = await lookup(state, body.prompt)
    rows = [Row("generate", entry.name, entry.tensor, text, (), body.max_new_tokens,
                max_input_tokens=entry.metadata.input_tokens) for text in _inputs(entry, body.inputs, body.raw)]
    texts = await run_rows(state, rows)
    return S.GenerateResponse(prompt=entry.name, results=[S.Generation(text=t) for t in texts])


@router.post("/v1/score", response_model=S.ScoreResponse, tags=["inference"],
             summary="Log-likelihood of target strings given an input",
             dependencies=[Depends(require_api)], responses=INFERENCE_ERRORS)
async def score(body: S.ScoreRequest, state: ServerState = Depends(get_state)) -> S.ScoreResponse:
    check_texts(state.settings, [body.input], "input", 1, "")
    check_options(state.settings, body.targets, "targets")
    entry = await lookup(state, body.prompt)
    [text] = _inputs(entry, [body.input], body.raw)
    [scores] = await run_rows(state, [Row("score", entry.name, entry.tensor, text, tuple(body.targets),
                                          max_input_tokens=entry.metadata.input_tokens)])
    return S.ScoreResponse(
        prompt=entry.name,
        results=[S.TargetScore(target=t, log_likelihood=_finite(s)) for t, s in zip(body.targets, scores)],
    )


# ------------------------------------------------------------------------ prompts
NAME_PARAM = PathParam(..., description="Prompt name (letters, digits, '.', '_', '-').", examples=["sst2"])


@router.get("/v1/prompts", response_model=S.PromptList, tags=["prompts"], summary="List served prompts",
            dependencies=[Depends(require_api)], responses=_error(401, 403))
async def list_prompts(state: ServerState = Depends(get_state)) -> S.PromptList:
    return S.PromptList(model=state.lm.model_id, prompts=[info(e) for e in state.registry.list()],
                        unavailable=state.registry.unavailable_list())


@router.get("/v1/prompts/{name}", response_model=S.PromptInfo, tags=["prompts"],
            summary="One prompt's metadata (no weights); its ETag header is the version for If-Match",
            dependencies=[Depends(require_api)], responses=_error(401, 403, 404, 409, 422))
async def get_prompt(response: Response, name: str = NAME_PARAM,
                     state: ServerState = Depends(get_state)) -> S.PromptInfo:
    entry = await lookup(state, name)
    response.headers["ETag"] = entry.etag
    return info(entry)


@router.put("/v1/prompts/{name}", response_model=S.PromptInfo, tags=["prompts"],
            summary="Upload (create or replace) a prompt file",
            description="The body is the raw prompt file (safetensors with softprompt metadata), e.g. "
                        "`curl -X PUT --data-binary @sst2.safetensors -H 'Authorization: Bearer $TOKEN' "
                        ".../v1/prompts/sst2`. It is validated (format, shape, finite floats, model "
                        "fingerprint, size) and written atomically to the prompt store. 201 when created, "
                        "200 when replaced; the ETag header is the new version (SHA-256 of the file). "
                        "`If-Match: \"<ETag>\"` replaces only that version and `If-None-Match: *` only "
                        "creates (412 otherwise). Without either, the upload replaces unconditionally, "
                        "unless the server runs with --require-if-match (then 428).",
            status_code=201, dependencies=[Depends(require_admin)],
            responses={201: {"description": "Created a new prompt."},
                       200: {"model": S.PromptInfo, "description": "Replaced an existing prompt."},
                       **_error(401, 403, 409, 412, 413, 422, 428)},
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def put_prompt(
    request: Request, response: Response, name: str = NAME_PARAM,
    if_match: str | None = Header(None, description='Replace only this version: "<ETag>" (or *: must exist).'),
    if_none_match: str | None = Header(None, description="`*`: create only (412 when the prompt exists)."),
    state: ServerState = Depends(get_state),
) -> S.PromptInfo:
    limit = state.settings.max_upload_bytes
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"prompt file is over the limit of {limit} bytes")
        chunks.append(chunk)
    precondition = Precondition.from_headers(if_match, if_none_match)
    entry, created = await run_in_threadpool(state.registry.put, name, b"".join(chunks), precondition)
    response.status_code = 201 if created else 200
    response.headers["ETag"] = entry.etag
    return info(entry)


@router.delete("/v1/prompts/{name}", status_code=204, tags=["prompts"], summary="Delete a prompt",
               description="`If-Match: \"<ETag>\"` deletes only that version (412 otherwise). Without it the "
                           "delete is unconditional, unless the server runs with --require-if-match (428).",
               dependencies=[Depends(require_admin)], responses=_error(401, 403, 404, 412, 428),
               response_class=Response)
async def delete_prompt(
    name: str = NAME_PARAM,
    if_match: str | None = Header(None, description='Delete only this version: "<ETag>".'),
    state: ServerState = Depends(get_state),
) -> Response:
    await run_in_threadpool(state.registry.delete, name, Precondition.from_headers(if_match, None))
    return Response(status_code=204)


# ------------------------------------------------------------------------ operations
@router.get("/healthz", response_model=S.Health, tags=["operations"], summary="Liveness and basic state")
async def healthz(state: ServerState = Depends(get_state)) -> S.Health:
    settings = state.settings
    return S.Health(
        status="stopping" if state.scheduler.closed else "ok",
        model=state.lm.model_id, device=str(state.lm.device), prompts=len(state.registry),
        queue_depth=state.scheduler.queue_depth(), batching=settings.batching,
        max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms,
        replica=settings.replica_id,
    )


@router.get("/metrics", tags=["operations"], summary="Prometheus metrics (text format 0.0.4)",
            response_class=PlainTextResponse,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format."}})
async def prometheus(state: ServerState = Depends(get_state)) -> PlainTextResponse:
    return PlainTextResponse(state.metrics.render(), media_type=CONTENT_TYPE)

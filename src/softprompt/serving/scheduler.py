"""The batching scheduler: one worker thread owns the frozen model and runs mixed-task batches.

Requests are split into rows (one input each) that queue in arrival order. The worker takes
the oldest row, waits until `max_batch_size` compatible rows are queued or the oldest row has
waited `max_wait_ms`, then runs them as ONE forward pass in which every row carries its own
prompt (PromptedLM's per-row prompts), and hands each row's result back to its request.

Rows are compatible when they share a batch key:
    mixed     (kind, max_new_tokens)             any mix of prompts in one pass
    per-task  (kind, max_new_tokens, prompt)     one prompt per pass (for comparisons)
Kinds (classify, score, generate) are batched separately; generation rows are grouped by
max_new_tokens so every row decodes exactly as it would alone (greedy, KV cache, together).

A request's prompt tensor is captured when it is submitted, so replacing or deleting a prompt
never changes a request already accepted. If a batch raises, each of its requests is retried
alone, so only the request that fails gets the error (HTTP 500); the worker never dies.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Sequence

from torch import Tensor

from softprompt.core.config import ConfigError
from softprompt.serving.errors import InferenceFailed, QueueFull, ShuttingDown
from softprompt.serving.metrics import Metrics

log = logging.getLogger("softprompt.serving")

Kind = Literal["classify", "score", "generate"]
KINDS: tuple[str, ...] = ("classify", "score", "generate")


@dataclass(frozen=True)
class Row:
    """One input to run: its text, its prompt (captured at submission) and what to compute."""

    kind: str
    prompt_name: str
    prompt: Tensor | None
    text: str
    options: tuple[str, ...] = ()   # classify: the labels; score: the targets
    max_new_tokens: int = 0         # generate
    max_input_tokens: int | None = None  # the truncation the prompt was trained with


class Executor(Protocol):
    """Runs one batch of rows of one kind (all with the same max_new_tokens); returns one
    result per row: a list of option log-likelihoods (classify/score) or a string (generate)."""

    def __call__(self, kind: str, rows: Sequence[Row]) -> list[Any]: ...


class PromptedLMExecutor:
    """The default executor: one PromptedLM call per batch, with per-row prompts."""

    def __init__(self, lm):
        self.lm = lm

    def __call__(self, kind: str, rows: Sequence[Row]) -> list[Any]:
        prompts = [r.prompt for r in rows]
        limits = [r.max_input_tokens for r in rows]
        if kind in ("classify", "score"):
            return self.lm.score_options([r.text for r in rows], [list(r.options) for r in rows], prompts,
                                         max_input_tokens=limits)
        if kind == "generate":
            return self.lm.generate([r.text for r in rows], prompts, max_new_tokens=rows[0].max_new_tokens,
                                    max_input_tokens=limits)
        raise ValueError(f"unknown row kind {kind!r}")


class Job:
    """One request: its rows and the future that receives their results, in order."""

    def __init__(self, rows: Sequence[Row]):
        self.rows = list(rows)
        self.results: list[Any] = [None] * len(self.rows)
        self.remaining = len(self.rows)
        self.future: Future = Future()
        self.cancelled = False

    def cancel(self) -> None:
        """Drop rows not yet started (the caller gave up: timeout or disconnect)."""
        self.cancelled = True


@dataclass
class _Pending:
    job: Job
    index: int
    key: tuple
    arrived: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatchRecord:
    """What one forward pass ran (kept for tests, benchmarks and debugging)."""

    kind: str
    rows: int
    prompts: tuple[str, ...]
    seconds: float
    ok: bool


class BatchScheduler:
    """Gathers rows from concurrent requests into batches and runs them on one worker thread.

    lm or executor: the model (wrapped in PromptedLMExecutor) or any Executor.
    The worker starts on the first submit (or start()); close() stops it and fails the rows
    still queued with 503.
    """

    def __init__(
        self,
        lm=None,
        *,
        executor: Executor | None = None,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        batching: str = "mixed",
        max_queue_rows: int = 4096,
        metrics: Metrics | None = None,
        history: int = 10_000,
    ):
        if executor is None:
            if lm is None:
                raise ValueError("BatchScheduler needs a PromptedLM or an executor")
            executor = PromptedLMExecutor(lm)
        if batching not in ("mixed", "per-task"):
            raise ConfigError(f"batching: must be 'mixed' or 'per-task', got {batching!r}")
        if max_batch_size < 1:
            raise ConfigError(f"max_batch_size: must be at least 1, got {max_batch_size!r}")
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.batching = batching
        self.max_queue_rows = max_queue_rows
        self.metrics = metrics
        self.history: deque[BatchRecord] = deque(maxlen=history)
        self._queue: deque[_Pending] = deque()
        self._counts: dict[tuple, int] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._busy = False

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        with self._cond:
            if self._closed:
                raise ShuttingDown("the server is shutting down")
            if self._thread is None:
                self._thread = threading.Thread(target=self._worker, name="softprompt-batcher", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking rows, let the running batch finish, fail the rest with 503."""
        with self._cond:
            self._closed = True
            leftover = list(self._queue)
            self._queue.clear()
            self._counts.clear()
            self._cond.notify_all()
            thread = self._thread
        for p in leftover:
            self._fail(p.job, ShuttingDown("the server is shutting down"))
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._closed

    def queue_depth(self) -> int:
        """Rows waiting (not counting the batch running now)."""
        with self._cond:
            return len(self._queue)

    # ----------------------------------------------------------------- submitting
    def key_for(self, row: Row) -> tuple:
        if self.batching == "per-task":
            return (row.kind, row.max_new_tokens, row.prompt_name)
        return (row.kind, row.max_new_tokens)

    def submit(self, rows: Sequence[Row]) -> Job:
        """Queue a request's rows; its job.future gets the list of results (or an error)."""
        job = Job(rows)
        if not job.rows:
            job.future.set_result([])
            return job
        for row in job.rows:
            if row.kind not in KINDS:
                raise ValueError(f"unknown row kind {row.kind!r}")
        self.start()
        with self._cond:
            if self._closed:
                raise ShuttingDown("the server is shutting down")
            if len(self._queue) + len(job.rows) > self.max_queue_rows:
                raise QueueFull(
                    f"the server is busy: {len(self._queue)} rows queued (limit {self.max_queue_rows}); retry later")
            now = time.perf_counter()
            for i, row in enumerate(job.rows):
                key = self.key_for(row)
                self._queue.append(_Pending(job, i, key, now))
                self._counts[key] = self._counts.get(key, 0) + 1
            self._cond.notify_all()
        return job

    def run(self, rows: Sequence[Row], timeout: float | None = None) -> list[Any]:
        """Submit and wait (blocking; for threads and tests)."""
        return self.submit(rows).future.result(timeout)

    # ----------------------------------------------------------------- the worker
    def _take_batch(self) -> list[_Pending] | None:
        """Wait for the next batch; None when closed. Called without the lock held."""
        with self._cond:
            while True:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return None
                head = self._queue[0]
                if head.job.cancelled or head.job.future.done():
                    self._pop_first(head)
                    continue
                key = head.key
                deadline = head.arrived + self.max_wait
                while not self._closed:
                    remaining = deadline - time.perf_counter()
                    if self._counts.get(key, 0) >= self.max_batch_size or remaining <= 0:
                        break
                    self._cond.wait(remaining)
                    if not self._queue or self._queue[0] is not head:
                        break  # head was dropped (close): start over
                if self._closed:
                    return None
                if not self._queue or self._queue[0] is not head:
                    continue
                batch = self._collect(key)
                self._busy = bool(batch)
                return batch

    def _pop_first(self, pending: _Pending) -> None:
        self._queue.popleft()
        self._decrement(pending.key)

    def _decrement(self, key: tuple) -> None:
        n = self._counts.get(key, 0) - 1
        if n > 0:
            self._counts[key] = n
        else:
            self._counts.pop(key, None)

    def _collect(self, key: tuple) -> list[_Pending]:
        """Remove up to max_batch_size live rows with `key`, oldest first (lock held)."""
        batch: list[_Pending] = []
        keep: deque[_Pending] = deque()
        while self._queue:
            p = self._queue.popleft()
            if p.key == key and len(batch) < self.max_batch_size:
                self._decrement(key)
                if p.job.cancelled or p.job.future.done():
                    continue
                batch.append(p)
            else:
                keep.append(p)
                if len(batch) >= self.max_batch_size:
                    keep.extend(self._queue)
                    self._queue.clear()
                    break
        self._queue = keep
        return batch

    def _worker(self) -> None:
        while True:
            try:
                batch = self._take_batch()
            except Exception:  # never let the worker die
                log.exception("batch scheduler: error while gathering a batch")
                continue
            if batch is None:
                return
            if not batch:
                continue
            try:
                self._run_batch(batch)
            except BaseException as err:  # noqa: BLE001 - fail the batch, keep serving
                log.exception("batch scheduler: unexpected error")
                for p in batch:
                    self._fail(p.job, InferenceFailed(f"inference failed: {type(err).__name__}: {err}"))
                if not isinstance(err, Exception):
                    raise
            finally:
                self._busy = False

    def _execute(self, batch: list[_Pending]) -> tuple[list[Any] | None, BaseException | None]:
        kind = batch[0].job.rows[batch[0].index].kind
        rows = [p.job.rows[p.index] for p in batch]
        started = time.perf_counter()
        waits = [started - p.arrived for p in batch]
        error: Exception | None = None
        results = None
        try:
            results = self.executor(kind, rows)
            if len(results) != len(rows):
                raise RuntimeError(f"executor returned {len(results)} results for {len(rows)} rows")
        except Exception as err:  # noqa: BLE001
            error = err
        seconds = time.perf_counter() - started
        prompts = tuple(sorted({r.prompt_name for r in rows}))
        self.history.append(BatchRecord(kind, len(rows), prompts, seconds, error is None))
        if self.metrics is not None:
            self.metrics.batch_done(kind, len(rows), len(prompts), seconds, waits, error is None)
        return results, error

    def _run_batch(self, batch: list[_Pending]) -> None:
        results, error = self._execute(batch)
        if error is None and results is not None:
            for p, result in zip(batch, results):
                self._deliver(p.job, p.index, result)
            return
        jobs: dict[int, list[_Pending]] = {}
        for p in batch:
            jobs.setdefault(id(p.job), []).append(p)
        if len(jobs) == 1:
            log.error("batch failed: %s: %s", type(error).__name__, error)
            self._fail(batch[0].job, InferenceFailed(f"inference failed: {type(error).__name__}: {error}"))
            return
        # Several requests shared the failing pass: rerun each alone so only the culprit fails.
        for group in jobs.values():
            self._run_batch(group)

    def _deliver(self, job: Job, index: int, result: Any) -> None:
        if job.future.done():
            return
        job.results[index] = result
        job.remaining -= 1
        if job.remaining == 0:
            try:
                job.future.set_result(job.results)
            except Exception:  # already failed or cancelled meanwhile
                pass

    @staticmethod
    def _fail(job: Job, error: BaseException) -> None:
        if not job.future.done():
            try:
                job.future.set_exception(error)
            except Exception:
                pass


def wait_idle(scheduler: BatchScheduler, timeout: float = 10.0, poll: float = 0.005) -> bool:
    """Block until nothing is queued or running (tests and benchmarks)."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if scheduler.queue_depth() == 0 and not scheduler._busy:
            return True
        time.sleep(poll)
    return False


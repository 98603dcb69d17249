"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand.

    softprompt_requests_total{endpoint,method,status}        counter
    softprompt_request_duration_seconds{endpoint}            histogram
    softprompt_batch_rows{kind}                              histogram (rows per forward pass)
    softprompt_batch_prompts{kind}                           histogram (distinct prompts per pass)
    softprompt_batch_duration_seconds{kind}                  histogram (model time per pass)
    softprompt_queue_wait_seconds{kind}                      histogram (row queued -> batch starts)
    softprompt_rows_total{kind}                              counter
    softprompt_batch_failures_total{kind}                    counter
    softprompt_queue_depth / softprompt_inflight_requests / softprompt_prompts_loaded   gauges
"""
from __future__ import annotations

import math
import threading
from typing import Callable, Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))


class Counter:
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()):
        self.name, self.help, self.label_names = name, help, labels
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(labels, 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        with self._lock:
            items = sorted(self._values.items())
        for labels, value in items:
            yield f"{self.name}{_labels(self.label_names, labels)} {_number(value)}"


class Histogram:
    def __init__(self, name: str, help: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()):
        self.name, self.help, self.label_names = name, help, labels
        self.buckets = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], list] = {}  # labels -> [bucket counts, sum, count]
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = [[0] * len(self.buckets), 0.0, 0]
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series[0][i] += 1
            series[1] += value
            series[2] += 1

    def count(self, *labels: str) -> int:
        with self._lock:
            series = self._series.get(labels)
            return series[2] if series else 0

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        with self._lock:
            items = sorted((k, (list(v[0]), v[1], v[2])) for k, v in self._series.items())
        for labels, (counts, total, n) in items:
            for bound, c in zip(self.buckets, counts):
                le = 'le="' + _number(bound) + '"'
                yield f"{self.name}_bucket{_labels(self.label_names, labels, le)} {c}"
            le = 'le="+Inf"'
            yield f"{self.name}_bucket{_labels(self.label_names, labels, le)} {n}"
            yield f"{self.name}_sum{_labels(self.label_names, labels)} {_number(total)}"
            yield f"{self.name}_count{_labels(self.label_names, labels)} {n}"


class Gauge:
    """A gauge read from a callback when rendering (queue depth, prompts loaded...)."""

    def __init__(self, name: str, help: str, read: Callable[[], float]):
        self.name, self.help, self.read = name, help, read

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        try:
            value = float(self.read())
        except Exception:  # a broken gauge must not break /metrics
            value = float("nan")
        yield f"{self.name} {'NaN' if math.isnan(value) else _number(value)}"


class Metrics:
    """All the server's metrics; thread-safe (the batch worker and handlers both write)."""

    def __init__(self) -> None:
        self.requests = Counter(
            "softprompt_requests_total", "HTTP requests answered, by endpoint (route template), method and status.",
            ("endpoint", "method", "status"))
        self.request_duration = Histogram(
            "softprompt_request_duration_seconds", "HTTP request latency (receipt to response), by endpoint.",
            LATENCY_BUCKETS, ("endpoint",))
        self.batch_rows = Histogram(
            "softprompt_batch_rows", "Rows (inputs) per forward pass, by kind.", ROW_BUCKETS, ("kind",))
        self.batch_prompts = Histogram(
            "softprompt_batch_prompts", "Distinct prompts (tasks) per forward pass, by kind.", ROW_BUCKETS, ("kind",))
        self.batch_duration = Histogram(
            "softprompt_batch_duration_seconds", "Model time per forward pass (batch), by kind.",
            LATENCY_BUCKETS, ("kind",))
        self.queue_wait = Histogram(
            "softprompt_queue_wait_seconds", "Time a row waited in the queue before its batch started, by kind.",
            LATENCY_BUCKETS, ("kind",))
        self.rows = Counter("softprompt_rows_total", "Rows (inputs) run through the model, by kind.", ("kind",))
        self.batch_failures = Counter(
            "softprompt_batch_failures_total", "Forward passes that raised (their requests got 500), by kind.",
            ("kind",))
        self.inflight = 0
        self._lock = threading.Lock()
        self.gauges: list[Gauge] = [
            Gauge("softprompt_inflight_requests", "HTTP requests being handled now.", lambda: self.inflight),
        ]

    def add_gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        self.gauges.append(Gauge(name, help, read))

    def request_started(self) -> None:
        with self._lock:
            self.inflight += 1

    def request_finished(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self.inflight -= 1
        self.requests.inc(endpoint, method, str(status))
        self.request_duration.observe(seconds, endpoint)

    def batch_done(self, kind: str, rows: int, prompts: int, seconds: float, waits: Iterable[float], ok: bool) -> None:
        self.batch_rows.observe(rows, kind)
        self.batch_prompts.observe(prompts, kind)
        self.batch_duration.observe(seconds, kind)
        for w in waits:
            self.queue_wait.observe(w, kind)
        self.rows.inc(kind, amount=rows)
        if not ok:
            self.batch_failures.inc(kind)

    def render(self) -> str:
        lines: list[str] = []
        metrics: list[Counter | Histogram | Gauge] = [
            self.requests, self.request_duration, self.batch_rows, self.batch_prompts,
            self.batch_duration, self.queue_wait, self.rows, self.batch_failures, *self.gauges]
        for metric in metrics:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"

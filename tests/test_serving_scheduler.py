"""The batching scheduler (serving/scheduler.py): mixed batches equal each request alone, per-task mode."""
from __future__ import annotations

import pytest
import torch
from serving_helpers import LABELS, TEXTS, _make_rows, fill_prompts_dir, write_prompt
from tiny import tiny_gemma3, tiny_llama, tiny_t5

from softprompt.serving.errors import InferenceFailed, QueueFull, ShuttingDown
from softprompt.serving.scheduler import BatchScheduler, PromptedLMExecutor

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def lm():
    return tiny_llama()


@pytest.fixture()
def prompts_dir(lm, tmp_path):
    return fill_prompts_dir(lm, tmp_path)


# =========================================================================== batching
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
        assert record.rows == len(rows)
        assert len(record.prompts) == 4
        assert record.ok
        for row, got in zip(rows, mixed):
            alone = model.score_options([row.text], [list(row.options)], [row.prompt])[0]
            assert got == pytest.approx(alone, abs=1e-4)
        # generation: decoded together with the KV cache, same text as alone
        gen_rows = _make_rows(model, tmp_path, "generate", names, TEXTS, max_new_tokens=5)
        scheduler.max_batch_size = len(gen_rows)
        jobs = [scheduler.submit([r]) for r in gen_rows]
        texts = [job.future.result(30)[0] for job in jobs]
        assert scheduler.history[-1].kind == "generate"
        assert scheduler.history[-1].rows == len(gen_rows)
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
        assert sum(rec.rows for rec in scheduler.history) == 16
        assert len(scheduler.history) >= 4
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
        assert len(out1) == 7
        assert all(len(s) == 2 for s in out1)
        assert len(out2) == 2
        assert all(isinstance(t, str) for t in out2)
        assert len(out3) == 1
        assert len(out3[0]) == 2
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
    assert len(jobs[0].future.result(30)[0]) == 2
    assert len(jobs[2].future.result(30)[0]) == 3
    with pytest.raises(QueueFull):
        scheduler.submit(rows * 2)
    pending = scheduler.submit(rows[:1])  # waits (batch not full, long wait) until close
    scheduler.close()
    assert isinstance(pending.future.exception(5), ShuttingDown)
    with pytest.raises(ShuttingDown):
        scheduler.submit(rows[:1])

"""The training order: every epoch draws each example once, the k-th draw depends only on
(seed, k), and length grouping pads less without fixing which lengths come when."""
import json

import pytest
from tiny import ToyTask, tiny_llama

from softprompt.core.config import ConfigError, PromptConfig, TrainConfig
from softprompt.core.prompt import SoftPrompt
from softprompt.errors import SoftPromptError
from softprompt.tasks.base import Example
from softprompt.training.sampling import LENGTH_GROUP_BATCHES, ExampleStream, example_length
from softprompt.training.trainer import Trainer


def _examples(n):
    # lengths 1..n in a scrambled file order, so sorted batches are runs of consecutive lengths
    return [Example("x" * (1 + (7 * i) % n), "", None) for i in range(n)]


def _padded(batches):
    return sum(max(map(example_length, b)) * len(b) for b in batches)


@pytest.mark.parametrize("batch_size", [None, 4])
def test_each_epoch_draws_every_example_once(batch_size):
    examples = _examples(37)  # not a multiple of the batch: batches straddle epochs
    drawn = ExampleStream(examples, seed=3, batch_size=batch_size).take(0, 37 * 4)
    for epoch in range(4):
        assert sorted(map(id, drawn[37 * epoch:37 * (epoch + 1)])) == sorted(map(id, examples))


@pytest.mark.parametrize("batch_size", [None, 4])
def test_the_kth_draw_depends_only_on_seed_and_k(batch_size):
    examples = _examples(37)
    whole = ExampleStream(examples, seed=3, batch_size=batch_size).take(0, 120)
    resumed = ExampleStream(examples, seed=3, batch_size=batch_size)
    pieces = resumed.take(50, 70)
    assert resumed.take(0, 50) + pieces == whole  # out of order, as after a resume
    other_seed = ExampleStream(examples, seed=4, batch_size=batch_size).take(0, 120)
    assert other_seed != whole


def test_grouped_batches_hold_neighbouring_lengths_in_shuffled_order():
    examples, size = _examples(37), 4
    stream = ExampleStream(examples, seed=3, batch_size=size)
    batches = [stream.take(k, size) for k in range(0, 37 * 4 - size, size)]
    # batch k covers draws k*size..: the ones inside one epoch are runs of consecutive lengths
    inside = [b for i, b in enumerate(batches) if (i * size) // 37 == (i * size + size - 1) // 37]
    assert len(inside) >= len(batches) - 4
    for i, batch in enumerate(inside):
        lengths = sorted(map(example_length, batch))
        if i < 37 // size:  # epoch 0 sorts all 37 rows: consecutive lengths
            assert lengths == list(range(lengths[0], lengths[0] + size))
        # later epochs hold back the rows that finish the straddling batch: a few gaps at most
        assert lengths[-1] - lengths[0] < 2 * size
    means = [sum(map(example_length, b)) / size for b in inside[:8]]
    assert means != sorted(means) and means != sorted(means, reverse=True)
    plain = ExampleStream(examples, seed=3).take(0, len(batches) * size)
    plain_batches = [plain[i:i + size] for i in range(0, len(plain), size)]
    assert _padded(batches) < 0.75 * _padded(plain_batches)


def test_pools_bound_the_sorting():
    n, size = 2 * LENGTH_GROUP_BATCHES * 4, 4  # two pools per epoch
    examples = _examples(n)
    batches = [ExampleStream(examples, seed=0, batch_size=size).take(k, size) for k in range(0, n, size)]
    spreads = [max(map(example_length, b)) - min(map(example_length, b)) for b in batches]
    # sorting the whole epoch would make every batch a run of 4 consecutive lengths (spread 3);
    # each pool holds a random half of the lengths, so its neighbours are a few apart
    assert sum(s == size - 1 for s in spreads) < len(spreads) / 2
    assert sum(spreads) / len(spreads) < n / 20


def test_trainer_pads_less_with_grouping_and_resume_refuses_a_change(tmp_path, monkeypatch):
    lm = tiny_llama()
    task = ToyTask()
    widths = []
    build = lm.build_batch

    def recording(rows, prompts=None, padding_side="left"):
        batch = build(rows, prompts, padding_side)
        if prompts is not None and getattr(prompts, "requires_grad", False):
            widths.append(max(len(r.input_ids) for r in rows) * len(rows))
        return batch

    monkeypatch.setattr(lm, "build_batch", recording)
    padded = {}
    for grouped in (True, False):
        widths.clear()
        prompt = SoftPrompt.initialise(lm, PromptConfig(length=2, init="sampled-vocab"), seed=0)
        config = TrainConfig(batch_size=3, max_steps=8, eval_every=8, learning_rate=0.01, group_by_length=grouped)
        Trainer(lm, prompt, task, task.load("train"), None, config, tmp_path / str(grouped), show_progress=False).train()
        padded[grouped] = sum(widths)
        assert len(widths) == 8
    assert padded[True] < padded[False]
    saved = json.loads((tmp_path / "False" / "result.json").read_text())
    assert saved["settings"]["train"]["group_by_length"] is False
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=2, init="sampled-vocab"), seed=0)
    config = TrainConfig(batch_size=3, max_steps=12, eval_every=8, learning_rate=0.01, group_by_length=True)
    with pytest.raises(SoftPromptError, match="group_by_length was False"):
        Trainer(lm, prompt, task, task.load("train"), None, config, tmp_path / "False",
                show_progress=False).train(resume=True)
    with pytest.raises(ConfigError, match="group_by_length"):
        TrainConfig(group_by_length="yes")  # type: ignore[arg-type]

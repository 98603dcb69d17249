"""Held-out runs: trained without the held-out rows, scored on all of them before and after."""
import dataclasses

import pytest
from tiny import ToyTask, tiny_llama

from softprompt.core.config import ConfigError, PromptConfig, TrainConfig
from softprompt.evaluation.baselines import majority_baseline
from softprompt.experiments.held_out import held_out_run


def test_a_held_out_run_trains_on_the_rest_and_scores_every_held_out_row(monkeypatch):
    import softprompt.experiments.held_out as held_out_module

    seen: dict = {}
    real = held_out_module.train_prompt

    def spy(lm, task, run_dir, prompt, config, train, dev, **kw):
        seen.update(train=[ex.input for ex in train], dev=[ex.input for ex in dev], config=config)
        return real(lm, task, run_dir, prompt, config, train, dev, **kw)

    monkeypatch.setattr(held_out_module, "train_prompt", spy)
    task = ToyTask()
    record = held_out_run(tiny_llama(), task, PromptConfig(length=2), TrainConfig(max_steps=4, batch_size=4,
                                                                                  learning_rate=0.05), held_out=5)
    rows = [ex.input for ex in task.load("train")]
    assert seen["train"] == rows[:-5] and seen["dev"] == rows[-5:]
    # one evaluation before, one after the last update, both on every held-out row (no subset, no selection)
    assert seen["config"].eval_every == 4 and seen["config"].intermediate_eval_examples == 5
    assert record["steps"] == 4 and record["held_out"] == 5 and record["metric"] == "accuracy"
    assert record["held_out_before"] in {100.0 * k / 5 for k in range(6)}
    assert record["held_out_after"] in {100.0 * k / 5 for k in range(6)}
    # the five held-out rows are negative; of the seven trained on, six are positive: majority "positive"
    assert record["held_out_majority"] == 0.0
    assert [step for step, _ in record["losses"]] == [4]
    assert record["settings"]["train"]["max_steps"] == 4


def test_majority_baseline_is_the_most_frequent_training_target():
    task = ToyTask()
    rows = task.load("train")
    label, metrics = majority_baseline(task, rows[:7], rows[7:])
    assert label == "positive" and metrics == {"accuracy": 0.0}


def test_every_held_out_row_is_scored_where_the_device_default_is_a_dev_subset(monkeypatch):
    import softprompt.training.defaults as defaults

    # the CPU profile scores intermediate evaluations on a subset of its size; a held-out run must not
    monkeypatch.setattr(defaults, "CPU_PROFILE", dataclasses.replace(defaults.CPU_PROFILE, intermediate_eval_examples=3))
    record = held_out_run(tiny_llama(), ToyTask(), PromptConfig(length=2), TrainConfig(max_steps=2, batch_size=4,
                                                                                       learning_rate=0.05), held_out=5)
    assert record["held_out_before"] in {100.0 * k / 5 for k in range(6)}
    assert record["settings"]["train"]["intermediate_eval_examples"] == 5


@pytest.mark.parametrize("show_progress", [False, True])
def test_a_held_out_run_shows_progress_in_a_log_only_when_asked(capsys, show_progress):
    # a long script run (scripts/measure_recipe.py) must show in its log that it is alive; a library call stays quiet
    held_out_run(tiny_llama(), ToyTask(), PromptConfig(length=2), TrainConfig(max_steps=3, batch_size=4, learning_rate=0.05),
                 held_out=5, show_progress=show_progress)
    lines = capsys.readouterr().err.splitlines()
    if show_progress:
        assert any(line.startswith("[train] 3/3 steps (100%) loss ") for line in lines)
        assert any(line.startswith("[eval") and "5/5 examples" in line for line in lines)
    else:
        assert not [line for line in lines if line.startswith("[")]


@pytest.mark.parametrize("held_out", [0, 12])
def test_held_out_must_leave_rows_on_both_sides(held_out):
    with pytest.raises(ConfigError, match="held_out"):
        held_out_run(tiny_llama(), ToyTask(), PromptConfig(length=2), TrainConfig(max_steps=2), held_out=held_out)

"""Defaults that fit the model and device: the lr rule, the CPU profile, dev subsets, loss warnings."""
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from tiny import ToyTask, tiny_gemma3, tiny_llama

from softprompt.api import train as api_train
from softprompt.core.config import ConfigError, PromptConfig, TrainConfig
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import read_prompt
from softprompt.evaluation.evaluator import evaluate
from softprompt.tasks.registry import get_task
from softprompt.training.defaults import (
    CPU_PROFILE,
    LR_PER_EMBEDDING_STD,
    choose_lr_multiple,
    comparable_multiples,
    embedding_std,
    resolve_settings,
)
from softprompt.training.loss_watch import LossWatch, label_entropy
from softprompt.training.trainer import Trainer


def test_embedding_std_is_measured_as_the_model_reads_embeddings():
    lm = tiny_gemma3()  # Gemma multiplies token embeddings by sqrt(hidden) inside its module
    ids = torch.tensor(lm.common_token_ids(5000))
    raw = lm.input_embeddings.weight[ids].std().item()
    assert embedding_std(lm) == pytest.approx(raw * lm.hidden_size ** 0.5, rel=1e-3)


def test_the_lr_rule_is_the_measured_choice():
    from pathlib import Path

    record = json.loads((Path(__file__).parents[1] / "reports" / "lr_rule.json").read_text())
    assert choose_lr_multiple(record["runs"]) == LR_PER_EMBEDDING_STD


def test_choose_lr_multiple_takes_the_best_mean():
    runs = [{"multiple": 0.1, "held_out_accuracy_after": 80}, {"multiple": 0.1, "held_out_accuracy_after": 60},
            {"multiple": 0.3, "held_out_accuracy_after": 75}]
    assert choose_lr_multiple(runs) == 0.3


def test_auto_settings_come_from_the_cpu_profile_and_the_lr_rule():
    lm = tiny_llama()
    resolved = resolve_settings(lm, PromptConfig(), TrainConfig())
    assert resolved.prompt.length == CPU_PROFILE.prompt_length
    assert resolved.train.batch_size == CPU_PROFILE.batch_size
    assert resolved.train.max_steps == CPU_PROFILE.max_steps
    assert resolved.train.eval_every == CPU_PROFILE.eval_every
    assert resolved.train.intermediate_eval_examples == CPU_PROFILE.intermediate_eval_examples
    assert resolved.train.learning_rate == pytest.approx(LR_PER_EMBEDDING_STD * embedding_std(lm), rel=1e-2)
    assert resolved.sources["batch_size"] == "cpu profile"
    assert resolved.sources["learning_rate"].startswith("rule: ")
    assert resolved.train.is_resolved


def test_auto_init_is_class_label_with_label_words_and_sampled_vocab_without():
    lm = tiny_llama()
    with_labels = resolve_settings(lm, PromptConfig(), TrainConfig(), ("negative", "positive"))
    assert with_labels.prompt.init == "class-label"
    assert with_labels.sources["init"].startswith("rule: ")
    # COPA-like tasks score per-example options: no label words, so class-label cannot apply.
    assert resolve_settings(lm, PromptConfig(), TrainConfig(), ()).prompt.init == "sampled-vocab"
    assert resolve_settings(lm, PromptConfig(init="random-uniform"), TrainConfig(), ()).sources["init"] == "user"
    # The init used without resolve_settings follows the same rule instead of failing.
    rows = SoftPrompt.initialise(lm, PromptConfig(length=3), (), seed=0).weight.detach()
    expected = SoftPrompt.initialise(lm, PromptConfig(length=3, init="sampled-vocab"), (), seed=0).weight.detach()
    assert torch.equal(rows, expected)


def test_user_settings_win_and_are_marked_as_such():
    resolved = resolve_settings(tiny_llama(), PromptConfig(length=7),
                                TrainConfig(learning_rate=0.5, batch_size=3, max_steps=40, eval_every=10))
    assert (resolved.prompt.length, resolved.train.learning_rate, resolved.train.batch_size) == (7, 0.5, 3)
    assert resolved.train.max_steps == 40
    assert {resolved.sources[k] for k in ("length", "learning_rate", "batch_size", "max_steps")} == {"user"}


def test_unresolved_prompt_length_is_a_config_error():
    with pytest.raises(ConfigError, match="length"):
        SoftPrompt.initialise(tiny_llama(), PromptConfig(), ("negative", "positive"))


def _subset_trainer(run_dir, on_step=None, **cfg):
    lm = tiny_llama()
    task = ToyTask()
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=4, init="sampled-vocab"), seed=0)
    config = TrainConfig(batch_size=4, max_steps=12, eval_every=4, log_every=2, optimizer="adam",
                         learning_rate=0.05, **{"intermediate_eval_examples": 5, **cfg})
    return lm, task, Trainer(lm, prompt, task, task.load("train"), task.load("dev"), config, run_dir,
                             show_progress=False, on_step=on_step)


def test_evaluations_use_the_subset_and_the_best_prompt_is_scored_on_the_whole_dev_set(tmp_path):
    lm, task, trainer = _subset_trainer(tmp_path)
    result = trainer.train()
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in log if r["event"] == "eval"]
    assert [r["examples"] for r in evals] == [5, 5, 5, 5]
    assert evals[0]["full_examples"] == 12  # "before training" is measured on the whole dev set
    assert result.initial_metrics == evals[0]["full_metrics"]
    final = [r for r in log if r["event"] == "final_eval"]
    assert len(final) == 1
    assert final[0]["examples"] == 12
    best = read_prompt(result.prompt_path).tensor
    independent = evaluate(lm, task, task.load("dev"), best)
    assert result.final_metrics == independent.metrics
    assert result.dev_score == {"metrics": independent.metrics, "examples": 12, "measured_by": "final evaluation"}
    assert json.loads((tmp_path / "result.json").read_text())["dev_score"] == result.dev_score


def test_without_a_subset_the_dev_score_is_the_best_evaluation(tmp_path):
    lm, task, trainer = _subset_trainer(tmp_path, intermediate_eval_examples=None)
    result = trainer.train()
    assert result.final_metrics is None  # no second pass over the same examples
    assert not [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
                if r["event"] == "final_eval"]
    independent = evaluate(lm, task, task.load("dev"), read_prompt(result.prompt_path).tensor)
    assert result.dev_score == {"metrics": independent.metrics, "examples": 12, "measured_by": "best evaluation"}


def test_result_json_records_every_setting_and_its_source(tmp_path):
    lm = tiny_llama()
    task = ToyTask()
    api_train(lm, task, tmp_path, PromptConfig(length=3, init="sampled-vocab"),
              TrainConfig(max_steps=4, eval_every=2), show_progress=False)
    recorded = json.loads((tmp_path / "result.json").read_text())["settings"]
    assert recorded["train"]["learning_rate"] == pytest.approx(LR_PER_EMBEDDING_STD * embedding_std(lm), rel=1e-2)
    assert recorded["train"]["batch_size"] == CPU_PROFILE.batch_size
    assert recorded["sources"]["batch_size"] == "cpu profile"
    assert recorded["sources"]["max_steps"] == "user"
    assert recorded["prompt"]["length"] == 3
    assert recorded["model"] == "tiny-llama"
    assert recorded["device"] == "cpu"


class Killed(Exception):
    pass


def test_resume_with_a_dev_subset_equals_an_uninterrupted_run(tmp_path):
    full = _subset_trainer(tmp_path / "full")[2].train()

    def kill(step, loss):
        if step == 6:
            raise Killed

    with pytest.raises(Killed):
        _subset_trainer(tmp_path / "killed", on_step=kill)[2].train()
    resumed = _subset_trainer(tmp_path / "killed")[2].train(resume=True)
    assert torch.equal(read_prompt(resumed.prompt_path).tensor, read_prompt(full.prompt_path).tensor)
    assert resumed.final_metrics == full.final_metrics
    assert resumed.initial_metrics == full.initial_metrics


def test_loss_watch_warns_once_about_a_rising_loss_naming_a_smaller_lr():
    watch = LossWatch(learning_rate=0.3, max_steps=100)
    warnings = [watch.observe(step, loss) for step, loss in zip(range(10, 70, 10), [2.0, 1.0, 0.9, 1.6, 3.0, 4.0])]
    fired = [w for w in warnings if w is not None]
    assert len(fired) == 1
    assert fired[0].kind == "diverging"
    # at step 60 the last three blocks average 2.87: above the first block (2.0) and 1.5 x the
    # lowest three-block mean (1.17); at step 50 (1.83) they were not yet above the first block
    assert fired[0].step == 60
    assert "--lr 0.1" in fired[0].message


def test_loss_watch_ignores_block_to_block_noise_of_a_healthy_run():
    # the block means of a real SST-2 run on SmolLM2 (batch 8, blocks of 10 updates): a single
    # block swings by 50% at low loss, the run is healthy
    blocks = [1.121, 0.582, 0.573, 0.477, 0.450, 0.330, 0.427, 0.437, 0.475, 0.306, 0.236, 0.358, 0.468, 0.352,
              0.384, 0.337]
    watch = LossWatch(learning_rate=0.006, max_steps=300)
    assert [watch.observe(10 * (i + 1), b) for i, b in enumerate(blocks)] == [None] * len(blocks)


def test_loss_watch_warns_about_a_flat_loss_and_not_about_a_falling_one():
    flat = LossWatch(learning_rate=0.01, max_steps=90)
    fired = [w for w in (flat.observe(s, 1.0) for s in range(10, 100, 10)) if w is not None]
    assert [w.kind for w in fired] == ["flat"]
    assert fired[0].step == 30  # a third of the run
    assert "--lr 0.03" in fired[0].message
    falling = LossWatch(learning_rate=0.01, max_steps=90)
    assert all(falling.observe(s, 1.0 / s) is None for s in range(10, 100, 10))


def _logged_blocks(task: str, data_dir) -> tuple[list[tuple[int, float]], float]:
    """A results-table run's logged loss blocks (SmolLM2, the defaults) and its training labels' entropy."""
    record = json.loads((Path(__file__).resolve().parents[1] / "reports" / "results" / "smollm2.json").read_text())
    targets = [ex.target for ex in get_task(task, data_dir=data_dir).load("train")]
    return [(step, loss) for step, loss in record["tasks"][task]["defaults"]["losses"]], label_entropy(targets)


@pytest.mark.parametrize("task,fires_at", [("rte", 300), ("wic", 300), ("mrpc", 300), ("sst2", None), ("cb", None)])
def test_loss_watch_says_when_a_real_run_learned_only_the_label_prior(task, fires_at, data_dir):
    blocks, entropy = _logged_blocks(task, data_dir)
    watch = LossWatch(learning_rate=0.0061, max_steps=300, prior_entropy=entropy)
    fired = [w for w in (watch.observe(step, loss) for step, loss in blocks) if w is not None]
    assert [(w.kind, w.step) for w in fired] == ([("label_prior", fires_at)] if fires_at else [])
    if fired:
        assert f"entropy of the training labels ({entropy:.3f})" in fired[0].message
        assert "--steps 1200" in fired[0].message  # four times the run's 300, what learned RTE (reports/recipe.md)
        assert "--resume --steps 1200 continues this run" in fired[0].message  # test_trainer: it makes the longer run


def test_label_entropy_is_the_loss_of_predicting_the_label_frequencies():
    assert label_entropy(["a", "b"] * 5) == pytest.approx(math.log(2))
    assert label_entropy(["a"] * 3) == 0.0
    assert label_entropy(["a", "a", "a", "b"]) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_a_flat_run_records_the_warning(tmp_path):
    lm = tiny_llama()
    task = ToyTask()
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=4, init="sampled-vocab"), seed=0)
    config = TrainConfig(batch_size=12, max_steps=30, eval_every=30, log_every=5, learning_rate=1e-9)
    result = Trainer(lm, prompt, task, task.load("train"), None, config, tmp_path, show_progress=False).train()
    assert len(result.warnings) == 1
    assert "has not gone down" in result.warnings[0]
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in log if r["event"] == "warning"] == ["flat"]


def test_training_without_a_terminal_prints_plain_progress_lines(tmp_path, capsys):
    lm = tiny_llama()
    task = ToyTask()
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=4, init="sampled-vocab"), seed=0)
    config = TrainConfig(batch_size=4, max_steps=8, eval_every=4, learning_rate=0.01)
    Trainer(lm, prompt, task, task.load("train"), task.load("dev"), config, tmp_path, show_progress=True).train()
    err = capsys.readouterr().err
    assert "[train] 8/8 steps (100%) loss " in err
    assert "| eta 0s" in err
    assert "[eval step 0] 12/12 examples (100%)" in err


def test_the_lr_rule_only_weighs_multiples_measured_on_every_task():
    runs = [{"task": "sst2", "multiple": 0.1, "held_out_accuracy_after": 90},
            {"multiple": 0.05, "held_out_accuracy_after": 80},  # recorded before `task` was: SST-2
            {"task": "rte", "multiple": 0.05, "held_out_accuracy_after": 60}]
    assert comparable_multiples(runs) == [0.05]
    assert choose_lr_multiple(runs) == 0.05


def test_the_trainer_compares_the_loss_with_the_label_entropy_only_where_it_is_comparable(tmp_path):
    lm, task = tiny_llama(), ToyTask()
    assert all(len(lm.encode("x", w).target_ids) == 1 for w in task.label_words)  # one token per label
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=2, init="sampled-vocab"), seed=0)
    make = lambda rows, **cfg: Trainer(lm, prompt, task, rows, None, TrainConfig(batch_size=4, max_steps=4, eval_every=4,
                                                                                 learning_rate=0.01, **cfg),
                                       tmp_path, show_progress=False)
    rows = task.load("train")
    assert make(rows).loss_watch.prior_entropy == pytest.approx(math.log(2))  # 6 positive, 6 negative
    assert make(rows[:9]).loss_watch.prior_entropy == pytest.approx(label_entropy(["positive"] * 6 + ["negative"] * 3))
    assert make(rows, objective="choices").loss_watch.prior_entropy is None  # another loss
    two_tokens = [dataclasses.replace(ex, target=ex.target + " " + ex.target) for ex in rows]
    assert make(two_tokens).loss_watch.prior_entropy is None  # a token mean, not an example's loss

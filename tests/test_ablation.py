"""The length x init ablation: cells trained and scored, resumable, drawn into the report."""
import json

import pytest
import torch
from tiny import ToyTask, tiny_llama
from typer.testing import CliRunner

from softprompt.core.config import ConfigError, PromptConfig, TrainConfig
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import load_prompt
from softprompt.errors import SoftPromptError
from softprompt.evaluation.evaluator import evaluate
from softprompt.experiments import ablation as ab
from softprompt.training.trainer import Trainer

SMALL = ab.AblationSettings(lengths=(1, 3), inits=("random-uniform", "class-label"), seeds=(0,), steps=3,
                            max_dev=6, eval_batch_size=4)


def test_settings_name_the_bad_field():
    with pytest.raises(ConfigError, match="lengths"):
        ab.AblationSettings(lengths=(0, 5))
    with pytest.raises(ConfigError, match="inits: unknown init"):
        ab.AblationSettings(inits=("text",))
    with pytest.raises(ConfigError, match="steps"):
        ab.AblationSettings(steps=0)
    with pytest.raises(ConfigError, match="seeds"):
        ab.AblationSettings(seeds=())


def test_each_cell_is_the_trained_prompt_scored_after_its_last_update(tmp_path):
    lm, task = tiny_llama(), ToyTask()
    record = ab.run_ablation(lm, task, "tiny", SMALL, tmp_path / "rec", tmp_path / "runs", command="cmd a",
                             log=lambda m: None)
    assert set(record["cells"]) == {"p1-random-uniform-seed0", "p3-random-uniform-seed0",
                                    "p1-class-label-seed0", "p3-class-label-seed0"}
    cell = record["cells"]["p3-class-label-seed0"]
    dev = task.load("dev")[:6]
    # the recorded score is the saved prompt's, which is the one a plain Trainer run (no dev) ends with
    saved = load_prompt(cell["prompt_path"], lm).tensor
    assert saved.shape == (3, lm.hidden_size)
    assert cell["primary"] == evaluate(lm, task, dev, saved, 4).metrics["accuracy"]
    initial = SoftPrompt.initialise(lm, PromptConfig(length=3, init="class-label"), task.label_words, seed=0)
    assert cell["primary_initial"] == evaluate(lm, task, dev, initial.weight.detach(), 4).metrics["accuracy"]
    config = TrainConfig(max_steps=3, eval_every=3, seed=0, learning_rate=cell["learning_rate"],
                         batch_size=cell["batch_size"], eval_batch_size=4)
    alone = Trainer(lm, initial, task, task.load("train"), None, config, tmp_path / "alone",
                    init_name="class-label", show_progress=False).train()
    torch.testing.assert_close(load_prompt(alone.prompt_path, lm).tensor, saved)
    assert cell["steps"] == 3
    assert cell["length_bands"] is True  # the CPU default, recorded per cell
    assert record["meta"]["dev_examples"] == 6
    assert json.loads((tmp_path / "rec" / "tiny-toy.json").read_text()) == record


def test_a_killed_grid_resumes_at_the_next_cell_and_refuses_another_budget(tmp_path, monkeypatch):
    lm, task = tiny_llama(), ToyTask()
    calls = []
    real = ab.run_cell

    def failing_second(*args, **kwargs):
        calls.append(args[5])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ab, "run_cell", failing_second)
    with pytest.raises(KeyboardInterrupt):
        ab.run_ablation(lm, task, "tiny", SMALL, tmp_path, tmp_path / "runs", log=lambda m: None)
    assert list(ab.load_record(tmp_path / "tiny-toy.json")["cells"]) == ["p1-random-uniform-seed0"]
    monkeypatch.setattr(ab, "run_cell", real)
    done = ab.run_ablation(lm, task, "tiny", SMALL, tmp_path, tmp_path / "runs", log=lambda m: None)
    assert len(done["cells"]) == 4
    with pytest.raises(SoftPromptError, match="different budgets"):
        ab.run_ablation(lm, task, "tiny", ab.AblationSettings(lengths=(1,), inits=("random-uniform",), steps=4,
                                                              max_dev=6), tmp_path, tmp_path / "runs")


def test_summary_table_and_figure(tmp_path):
    record = {"meta": {"model": "m", "task": "t", "primary_metric": "accuracy", "dev_examples": 10, "dev_total": 20,
                       "settings": {"steps": 5},
                       "commands": ["cmd x"]},
              "cells": {}}
    for init, base in (("random-uniform", 50.0), ("class-label", 70.0)):
        for p in (1, 20):
            for seed in (0, 1):
                record["cells"][ab.cell_key(p, init, seed)] = {
                    "init": init, "length": p, "seed": seed, "primary": base + p / 10 + seed * 2,
                    "primary_initial": base - 10}
    stats = ab.summarise(record)
    assert stats["class-label"][20] == {"mean": 73.0, "min": 72.0, "max": 74.0, "n": 2}
    text = ab.ablation_section([record])
    assert "| 20 | 53.0 [52.0-54.0] (40.0) | 73.0 [72.0-74.0] (60.0) |" in text
    assert "figures/ablation_m_t.png" in text
    assert "cmd x" in text
    assert "Each batch computed in one padded pass." in text  # cells recorded before length bands
    record["cells"]["p20-class-label-seed1"]["length_bands"] = True
    assert "in length bands (the CPU default since; the same gradient to float rounding) in " \
        "p20-class-label-seed1; in one padded pass in the cells recorded before." in ab.ablation_section([record])
    png = ab.ablation_figure(record, tmp_path / "f.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with_majority = ab.ablation_figure(record, tmp_path / "g.png", majority=50.0)
    assert with_majority.read_bytes() != png.read_bytes()  # the majority-class line is drawn


def test_cli_ablate_refuses_class_label_without_label_words(tmp_path, data_dir, monkeypatch):
    import softprompt.cli.experiments as ex

    monkeypatch.setattr(ex, "_load", lambda *a, **k: pytest.fail("no model should load"))
    r = CliRunner().invoke(ex.experiments_app, ["ablate", "--task", "copa", "--data-dir", str(data_dir),
                                                "--out", str(tmp_path)])
    assert r.exit_code != 0
    assert "class-label" in str(r.exception)


def test_cli_ablate_writes_its_record(tmp_path, data_dir, monkeypatch):
    import softprompt.cli.experiments as ex

    monkeypatch.setattr(ex, "_load", lambda *a, **k: tiny_llama())
    r = CliRunner().invoke(ex.experiments_app, ["ablate", "--task", "sst2", "-m", "tiny", "-p", "1", "--init",
                                                "random-uniform", "--steps", "1", "--max-dev", "2", "--data-dir",
                                                str(data_dir), "--out", str(tmp_path / "rec"),
                                                "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "rec" / "tiny-sst2.json").read_text())
    assert list(record["cells"]) == ["p1-random-uniform-seed0"]


def test_ablation_axis_spans_at_least_ten_points():
    assert ab.min_span_limits(52.3, 53.8) == pytest.approx((48.05, 58.05))
    assert ab.min_span_limits(40.0, 90.0) == (40.0, 90.0)

"""Interpretability measurements on prompt files of a tiny model: an untouched class-label
prompt keeps its label words and equals its rebuilt initial value; a moved prompt does not."""
import json

from tiny import tiny_llama

from softprompt.core.config import PromptConfig
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import metadata_for, save_prompt
from softprompt.experiments.interpretability import analyse_prompt, write_report

LABELS = ["negative", "positive"]


def _save(lm, path, weight):
    save_prompt(path, weight, metadata_for(lm, weight, init="class-label", task="toy", label_words=LABELS,
                                           train_settings={"seed": 3}))


def test_untrained_class_label_prompt_keeps_its_labels_and_its_start(tmp_path):
    lm = tiny_llama()
    start = SoftPrompt.initialise(lm, PromptConfig(length=4, init="class-label"), LABELS, seed=3).weight.detach()
    _save(lm, tmp_path / "p.safetensors", start)
    a = analyse_prompt(lm, tmp_path / "p.safetensors")
    assert a.label_rows == 2
    assert a.label_rows_keeping_a_label == 2
    assert [row[0][0].strip() for row in a.neighbours[:2]] == LABELS  # row i starts as label word i
    assert a.init_cosine == [pytest_approx(1.0)] * 4
    assert len(a.row_similarity) == 4
    assert a.row_similarity[1][1] == pytest_approx(1.0)


def test_rows_moved_away_lose_their_labels_and_their_start(tmp_path):
    lm = tiny_llama()
    start = SoftPrompt.initialise(lm, PromptConfig(length=4, init="class-label"), LABELS, seed=3).weight.detach()
    moved = -start  # each row points away from where it started: its label word is now its farthest token
    _save(lm, tmp_path / "p.safetensors", moved)
    a = analyse_prompt(lm, tmp_path / "p.safetensors")
    assert a.init_cosine == [pytest_approx(-1.0)] * 4
    assert a.label_rows_keeping_a_label == 0


def test_report_writes_table_records_and_a_figure_per_prompt(tmp_path):
    lm = tiny_llama()
    start = SoftPrompt.initialise(lm, PromptConfig(length=3, init="class-label"), LABELS, seed=3).weight.detach()
    _save(lm, tmp_path / "p.safetensors", start)
    md = write_report([analyse_prompt(lm, tmp_path / "p.safetensors")], tmp_path / "reports",
                      tmp_path / "reports" / "figures", "softprompt experiments interpret p.safetensors")
    text = md.read_text()
    assert "| tiny-llama | toy | class-label | 3 | 2 of 2 |" in text
    assert "](figures/interpretability_tiny-llama_toy_class-label_p3.png)" in text
    figure = tmp_path / "reports" / "figures" / "interpretability_tiny-llama_toy_class-label_p3.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((tmp_path / "reports" / "interpretability.json").read_text())
    assert record["prompts"][0]["label_rows_keeping_a_label"] == 2


def test_two_prompts_alike_in_model_task_init_and_length_keep_one_figure_each(tmp_path):
    lm = tiny_llama()
    for k in (1, 2):
        start = SoftPrompt.initialise(lm, PromptConfig(length=3, init="class-label"), LABELS, seed=k).weight.detach()
        _save(lm, tmp_path / f"p{k}.safetensors", start)
    analyses = [analyse_prompt(lm, tmp_path / f"p{k}.safetensors") for k in (1, 2)]
    text = write_report(analyses, tmp_path, tmp_path / "figures", "cmd").read_text()
    assert "](figures/interpretability_tiny-llama_toy_class-label_p3.png)" in text
    assert "](figures/interpretability_tiny-llama_toy_class-label_p3-2.png)" in text
    assert (tmp_path / "figures" / "interpretability_tiny-llama_toy_class-label_p3-2.png").is_file()


def pytest_approx(value):
    import pytest

    return pytest.approx(value, abs=1e-5)


def test_prompts_of_two_models_are_each_analysed_on_their_own_model(tmp_path):
    from tiny import tiny_t5

    from softprompt.experiments.interpretability import analyse_prompts

    models = {lm.model_id: lm for lm in (tiny_llama(), tiny_t5())}
    assert len(models) == 2
    paths = []
    for k, lm in enumerate(models.values()):
        start = SoftPrompt.initialise(lm, PromptConfig(length=3, init="class-label"), LABELS, seed=3).weight.detach()
        _save(lm, tmp_path / f"p{k}.safetensors", start)
        paths.append(tmp_path / f"p{k}.safetensors")
    loads = []
    analyses = analyse_prompts(paths * 2, lambda name: loads.append(name) or models[name])
    assert loads == list(models)  # each model loaded once
    assert [a.model for a in analyses] == list(models) * 2
    assert [a.to_dict() for a in analyses[:2]] == [analyse_prompt(lm, p).to_dict() for lm, p in zip(models.values(), paths)]

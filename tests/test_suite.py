"""Suite evaluation: `eval --suite superglue|glue PROMPT_DIR` finds prompts, scores, averages."""
import json

import pytest
import torch
from rich.console import Console
from tiny import tiny_llama
from typer.testing import CliRunner

from softprompt.cli.suite import run_suite_command, suite_table
from softprompt.core.config import PromptConfig
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import metadata_for, save_prompt
from softprompt.errors import SoftPromptError
from softprompt.evaluation.suite import (
    find_prompts,
    run_suite,
    task_score,
)
from softprompt.tasks.metrics import superglue_score

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def lm():
    return tiny_llama()


def _save(lm, path, task, length=3, dev=None, seed=0):
    p = SoftPrompt.initialise(lm, PromptConfig(length=length, init="sampled-vocab"), seed=seed).weight.detach()
    best = {"name": "accuracy", "value": dev, "step": 1, "metrics": {}} if dev is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_prompt(path, p, metadata_for(lm, p, task=task, best_dev_metric=best))


def test_find_prompts_by_metadata_file_name_and_folder(lm, tmp_path):
    _save(lm, tmp_path / "anything.safetensors", "cb")
    _save(lm, tmp_path / "copa.safetensors", None)  # no task recorded: file name
    _save(lm, tmp_path / "runs" / "rte" / "prompt.safetensors", None)  # run folder name
    _save(lm, tmp_path / "sst2.safetensors", "sst2")  # not a SuperGLUE task
    _save(lm, tmp_path / "wic-a.safetensors", "wic", dev=60.0)
    _save(lm, tmp_path / "wic-b.safetensors", "wic", dev=70.0)
    (tmp_path / "broken.safetensors").write_bytes(b"not a prompt")
    chosen, notes = find_prompts(tmp_path, "superglue")
    assert {t: p.path.name for t, p in chosen.items()} == {
        "cb": "anything.safetensors", "copa": "copa.safetensors", "rte": "prompt.safetensors", "wic": "wic-b.safetensors"}
    assert any(n.startswith("wic: using wic-b.safetensors (it has the best") and "skipped wic-a" in n for n in notes)
    assert any("broken" in n for n in notes)
    glue, _ = find_prompts(tmp_path, "glue")
    assert set(glue) == {"sst2", "rte"}
    with pytest.raises(SoftPromptError, match="unknown suite"):
        find_prompts(tmp_path, "bigbench")
    with pytest.raises(SoftPromptError, match="not found"):
        find_prompts(tmp_path / "nope", "superglue")


def test_task_scores_follow_each_benchmark():
    assert task_score("superglue", "cb", {"accuracy": 80.0, "macro_f1": 60.0, "average": 70.0}) == 70.0
    assert task_score("glue", "mrpc", {"accuracy": 80.0, "f1": 90.0}) == 85.0
    assert task_score("glue", "sst2", {"accuracy": 91.0}) == 91.0


def test_run_suite_on_real_data_scores_and_averages(lm, tmp_path, data_dir):
    for name in ("cb", "copa", "rte"):
        _save(lm, tmp_path / f"{name}.safetensors", name)
    res = run_suite(lm, "superglue", tmp_path, data_dir, max_examples=4, batch_size=4)
    assert set(res.tasks) == {"cb", "copa", "rte"}
    assert all(o.error is None for o in res.tasks.values())
    assert res.tasks["cb"].examples == 4
    assert set(res.tasks["cb"].metrics) >= {"accuracy", "macro_f1"}
    expected = superglue_score({t: o.metrics for t, o in res.tasks.items()})
    assert res.average == pytest.approx(expected)
    assert not res.complete
    assert set(res.missing) == {"boolq", "multirc", "record", "wic", "wsc"}
    d = res.to_dict()
    assert d["tasks_scored"] == 3
    assert d["tasks_total"] == 8
    assert d["average"] == pytest.approx(expected)
    console = Console(record=True, width=200)
    console.print(suite_table(res))
    text = console.export_text()
    assert "SuperGLUE average" in text
    assert "over 3 of 8 tasks" in text
    assert "missing: boolq" in text
    assert "macro_f1" in text


def test_a_task_without_labels_is_an_error_row_not_a_crash(lm, tmp_path, data_dir):
    _save(lm, tmp_path / "cb.safetensors", "cb")
    _save(lm, tmp_path / "copa.safetensors", "copa")
    res = run_suite(lm, "superglue", tmp_path, data_dir, split="test", max_examples=3)
    assert all("no labels" in o.error for o in res.tasks.values())
    assert res.average is None


def test_suite_command_prints_table_and_writes_json(lm, tmp_path, data_dir, monkeypatch):
    from softprompt.core import loading

    monkeypatch.setattr(loading, "load_model", lambda *a, **k: lm)
    _save(lm, tmp_path / "p" / "mrpc.safetensors", "mrpc")
    _save(lm, tmp_path / "p" / "sst2.safetensors", "sst2")
    out = tmp_path / "glue.json"
    console = Console(record=True, width=200)
    run_suite_command("glue", tmp_path / "p", "tiny", data_dir, "dev", 4, 3, out, "cpu", console)
    data = json.loads(out.read_text())
    assert set(data["tasks"]) == {"mrpc", "sst2"}
    assert data["suite"] == "glue"
    mrpc = data["tasks"]["mrpc"]["metrics"]
    assert data["tasks"]["mrpc"]["score"] == pytest.approx((mrpc["accuracy"] + mrpc["f1"]) / 2)
    assert "GLUE average" in console.export_text()
    with pytest.raises(SoftPromptError, match="no prompt"):
        run_suite_command("superglue", tmp_path / "p", "tiny", data_dir, "dev", 4, 3, None, "cpu", console)


def test_cli_eval_suite(lm, tmp_path, data_dir, monkeypatch):
    from softprompt.cli.main import app
    from softprompt.core import loading

    monkeypatch.setattr(loading, "load_model", lambda *a, **k: lm)
    _save(lm, tmp_path / "cb.safetensors", "cb")
    out = tmp_path / "sg.json"
    result = CliRunner().invoke(app, ["eval", "--suite", "superglue", str(tmp_path), "--data-dir", str(data_dir),
                                      "--max-examples", "3", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "SuperGLUE" in result.output
    assert json.loads(out.read_text())["tasks"]["cb"]["examples"] == 3

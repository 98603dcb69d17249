"""The paper's comparisons: model tuning, prompt design, domain transfer, the report, the CLI."""
import functools
import json
import time
from dataclasses import replace

import pytest
import torch
from tiny import LongShortTask, ToyTask, tiny_llama, tiny_t5
from typer.testing import CliRunner

from softprompt.core.config import ConfigError, PromptConfig, TrainConfig
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import metadata_for, read_prompt, save_prompt
from softprompt.errors import SoftPromptError
from softprompt.evaluation.evaluator import evaluate
from softprompt.experiments import prompt_design as pd
from softprompt.experiments.model_tuning import (
    ModelTuningConfig,
    private_copy,
    tune_model,
)
from softprompt.experiments.report import (
    ReportSettings,
    build_report,
    load_report_settings,
    load_results,
    run_task,
)
from softprompt.experiments.transfer import TRANSFER_PAIRS, evaluate_transfer, model_tuning_transfer
from softprompt.tasks.base import Example
from softprompt.tasks.registry import get_task
from softprompt.training.defaults import CPU_PROFILE

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::softprompt.tasks.readers.DataWarning")


# ---------------------------------------------------------------- model tuning
@pytest.mark.parametrize("make", [tiny_llama, tiny_t5])
def test_model_tuning_learns_on_a_copy_and_leaves_the_shared_model_alone(make, tmp_path):
    lm = make()
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    task = ToyTask()
    config = ModelTuningConfig(learning_rate=3e-3, batch_size=4, max_steps=25, eval_every=10, log_every=5,
                               eval_at_start=True)
    res = tune_model(lm, task, task.load("train"), task.load("dev"), config, run_dir=tmp_path, keep_model=True)
    for k, v in lm.model.state_dict().items():
        assert torch.equal(v, before[k]), f"shared weight {k} changed"
    assert not lm.model.training
    assert all(not p.requires_grad for p in lm.model.parameters())
    tuned = res.model
    assert any(not torch.equal(v, before[k]) for k, v in tuned.model.state_dict().items())
    assert not tuned.model.training
    assert all(not p.requires_grad for p in tuned.model.parameters())
    assert res.losses[-1][1] < res.losses[0][1]
    assert res.final_metrics == evaluate(tuned, task, task.load("dev"), None).metrics
    assert res.best_metrics["accuracy"] >= res.final_metrics["accuracy"]
    assert res.best_step in (0, 10, 20, 25)
    assert res.initial_metrics is not None
    assert res.trainable_parameters == sum( p.numel() for p in {id(p): p for p in lm.model.parameters()}.values())
    log = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["event"] == "eval"] == [0, 10, 20, 25]
    assert json.loads((tmp_path / "result.json").read_text())["steps"] == 25


@pytest.mark.parametrize("make", [tiny_llama, tiny_t5])
def test_model_tuning_in_length_bands_trains_the_weights_one_padded_pass_trains(make, monkeypatch):
    from softprompt.core import batching

    passes = []

    real_bands = batching.length_bands

    def every_cut(lengths):  # the tiny rows are short: let every cut that saves a token count
        passes.append(len(real_bands(lengths, overhead_tokens=0)))
        return real_bands(lengths, overhead_tokens=0)

    def without_dropout():  # model tuning trains in train mode: T5's dropout would draw differently per band
        lm = make()
        for module in lm.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
            elif isinstance(getattr(module, "dropout", None), float):  # T5's attention keeps a rate
                module.dropout = 0.0
        return lm

    monkeypatch.setattr(batching, "length_bands", every_cut)
    task = LongShortTask()
    config = ModelTuningConfig(learning_rate=3e-3, batch_size=6, max_steps=4, log_every=1)
    padded = tune_model(without_dropout(), task, task.load("train"), None, replace(config, length_bands=False), keep_model=True)
    assert passes == [] and padded.config["length_bands"] is False
    banded = tune_model(without_dropout(), task, task.load("train"), None, config, keep_model=True)
    assert banded.config["length_bands"] is True  # the CPU default, recorded resolved
    assert len(passes) == 4 and max(passes) > 1
    assert [v for _, v in banded.losses] == pytest.approx([v for _, v in padded.losses], rel=1e-5)
    for (name, a), b in zip(banded.model.model.named_parameters(), padded.model.model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)
    with pytest.raises(ConfigError, match="length_bands"):
        ModelTuningConfig(length_bands=1)  # type: ignore[arg-type]


def test_model_tuning_sees_the_prompt_tuning_example_order_and_adafactor_works(tmp_path, monkeypatch):
    import softprompt.experiments.model_tuning as mt
    import softprompt.training.trainer as tr

    def recording(log):
        class Recording(tr.ExampleStream):
            def take(self, start, count):
                batch = super().take(start, count)
                log.append([ex.input for ex in batch])
                return batch
        return Recording

    tuned, prompted = [], []
    monkeypatch.setattr(mt, "ExampleStream", recording(tuned))
    monkeypatch.setattr(tr, "ExampleStream", recording(prompted))
    lm = tiny_llama()
    task = ToyTask()
    seen = []
    res = tune_model(lm, task, task.load("train"), None, ModelTuningConfig(optimizer="adafactor", learning_rate=1e-3,
                     batch_size=4, max_steps=3, seed=5), on_step=lambda s, loss: seen.append(loss))
    assert len(seen) == 3
    assert res.final_metrics is None
    assert res.dev_examples == 0
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=2, init="sampled-vocab"))
    tr.Trainer(lm, prompt, task, task.load("train"), None,
               TrainConfig(batch_size=4, max_steps=3, eval_every=3, learning_rate=0.01, seed=5), tmp_path,
               show_progress=False).train()
    # the batches each loop actually trained on, in order: the same examples in the same order
    assert tuned == prompted
    assert len(tuned) == 3
    assert tuned[0] != tuned[1]
    with pytest.raises(ConfigError, match="optimizer"):
        ModelTuningConfig(optimizer="sgd")


def test_private_copy_is_independent():
    lm = tiny_llama()
    copy = private_copy(lm)
    with torch.no_grad():
        next(copy.model.parameters()).add_(1.0)
    assert not torch.equal(next(copy.model.parameters()), next(lm.model.parameters()))


def test_model_tuning_shows_progress_in_a_log_and_nothing_when_asked_not_to(capsys):
    lm, task = tiny_llama(), ToyTask()
    config = ModelTuningConfig(batch_size=4, max_steps=3, eval_every=2, log_every=1)
    tune_model(lm, task, task.load("train"), task.load("dev"), config, show_progress=True)
    lines = capsys.readouterr().err.splitlines()
    # stderr is not a terminal here: plain lines, each evaluation's closing line, then training's
    dev = len(task.load("dev"))
    assert [ln.split(" | ")[0] for ln in lines if ln.startswith("[eval")] == [
        f"[eval step 2] {dev}/{dev} examples (100%)", f"[eval step 3] {dev}/{dev} examples (100%)"]
    assert lines[-1].startswith("[model tuning] 3/3 steps (100%) loss ")
    tune_model(lm, task, task.load("train"), task.load("dev"), config)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- prompt design
def test_every_template_parses_every_dev_example_of_the_real_data(data_dir):
    for name, template in pd.TEMPLATES.items():
        task = get_task(name, data_dir, format="t5")
        split = "dev" if "dev" in task.available_splits() else None
        if name == "record":
            split = "fewglue32-dev32"
        examples = task.load(split)
        for ex in examples:
            fields = template.fields(ex)
            assert all(isinstance(v, str) for v in fields.values())
            # the T5 text parsed back by the regex gives the same prompt as the structured fields
            # (where the T5 marking kept both WSC spans: an overlapped pronoun is left unmarked)
            from dataclasses import replace as _replace
            if all(template.fields(_replace(ex, fields={})).values()):
                assert template.fill(_replace(ex, fields={})) == template.fill(ex), name
            text = template.fill(ex)
            assert " sentence1:" not in text
            assert not text.startswith(name + " ")
            assert len(template.options(ex)) == len(ex.options)
            assert len(set(template.options(ex))) == len(ex.options), f"{name}: answer words collide"
        assert examples, name


def test_templates_render_natural_language(data_dir):
    wsc = get_task("wsc", data_dir).load("dev")[0]
    fields = pd.TEMPLATES["wsc"].fields(wsc)
    assert fields["noun"]
    assert fields["pronoun"]
    assert "*" not in fields["text"]
    assert "#" not in fields["text"]
    cb = get_task("cb", data_dir).load("dev")[0]
    text = pd.design_input(pd.TEMPLATES["cb"], cb)
    assert text.startswith(pd.TEMPLATES["cb"].instruction)
    assert text.endswith("True, False, or Neither?\nAnswer:")
    boolq = pd.TEMPLATES["boolq"].fields(get_task("boolq", data_dir).load("dev")[0])
    assert boolq["question"].endswith("?")
    copa = get_task("copa", data_dir).load("dev")[0]
    assert pd.TEMPLATES["copa"].options(copa) == copa.options
    doc = pd.describe_templates()
    assert all(f"| {name} |" in doc for name in pd.TEMPLATES)


def test_k_shot_places_answered_demonstrations_before_the_input(data_dir):
    task = get_task("rte", data_dir, format="t5")
    train, dev = task.load("train"), task.load("dev")
    demos = pd.sample_demonstrations(train, 2, seed=3)
    assert demos == pd.sample_demonstrations(train, 2, seed=3)
    assert demos != pd.sample_demonstrations(train, 2, seed=4)
    text = pd.design_input(pd.TEMPLATES["rte"], dev[0], demos)
    parts = text.split("\n\n")
    assert len(parts) == 4
    assert parts[1].endswith(pd.TEMPLATES["rte"].answer(demos[0]))
    assert parts[3] == pd.TEMPLATES["rte"].fill(dev[0])
    with pytest.raises(SoftPromptError, match="labelled"):
        pd.sample_demonstrations(train[:3], 5)


def test_prompt_design_scores_verbalized_options_and_maps_back(data_dir):
    lm = tiny_llama()
    task = get_task("cb", data_dir, format="t5")
    dev, train = task.load("dev")[:6], task.load("train")
    natural = get_task("cb", data_dir)
    ndev, ntrain = natural.load("dev")[:6], natural.load("train")
    for shots in (0, 2):
        # a task in the natural format gets the same hand-written prompt, mapped class by class
        nres = pd.evaluate_prompt_design(lm, natural, ndev, shots, ntrain, batch_size=4)
        tres = pd.evaluate_prompt_design(lm, task, dev, shots, train, batch_size=4)
        assert nres.metrics == tres.metrics
        assert nres.extra["example_input"] == tres.extra["example_input"]
        assert all(p in natural.label_words for p in nres.predictions)
        res = pd.evaluate_prompt_design(lm, task, dev, shots, train, batch_size=4)
        assert set(res.metrics) == {"accuracy", "macro_f1", "average"}
        assert all(p in task.label_words for p in res.predictions)
        designed = pd.design_examples(pd.TEMPLATES["cb"], dev, pd.sample_demonstrations(train, shots) if shots else ())
        direct = lm.score_options([e.input for e in designed], [e.options for e in designed])
        torch.testing.assert_close(torch.tensor(res.scores), torch.tensor(direct), atol=1e-5, rtol=1e-5)
        assert res.metrics == task.compute_metrics(res.predictions, dev)
        assert res.extra["shots"] == shots
        assert len(res.extra["demonstrations"]) == shots
    with pytest.raises(SoftPromptError, match="no hand-written prompt"):
        pd.evaluate_prompt_design(lm, ToyTask(), ToyTask().load("dev"))
    with pytest.raises(SoftPromptError, match="needs training examples"):
        pd.evaluate_prompt_design(lm, task, dev, shots=1)


def test_a_custom_template_for_any_task():
    lm = tiny_llama()
    task = ToyTask()
    template = pd.DesignTemplate(task="toy", parse=r"^(?P<text>.*)$", instruction="is it good ?",
                                 body="{text} . answer :", verbalizer={"negative": "no", "positive": "yes"})
    res = pd.evaluate_prompt_design(lm, task, task.load("dev"), template=template, max_input_tokens=8)
    assert res.extra["example_input"] == "is it good ?\n\ngreat fun . answer :"
    assert lm.max_input_tokens == 512  # restored
    with pytest.raises(SoftPromptError, match="expected format"):
        pd.TEMPLATES["cb"].fields(Example("no format here", "neutral", ("entailment", "contradiction", "neutral")))


# ---------------------------------------------------------------- transfer
def _prompt_file(lm, path, task, labels, length=3):
    p = SoftPrompt.initialise(lm, PromptConfig(length=length, init="sampled-vocab")).weight.detach()
    return save_prompt(path, p, metadata_for(lm, p, task=task, label_words=list(labels) if labels else None))


def test_transfer_qqp_prompt_on_mrpc_uses_the_source_prefix(tmp_path, data_dir):
    lm = tiny_llama()
    mrpc = get_task("mrpc", data_dir)
    path = _prompt_file(lm, tmp_path / "qqp.safetensors", "qqp", mrpc.label_words)
    assert ("qqp", "mrpc") in TRANSFER_PAIRS
    assert ("squad", "bioasq") in TRANSFER_PAIRS
    t5_mrpc = get_task("mrpc", data_dir, format="t5")
    path = _prompt_file(lm, tmp_path / "qqp.safetensors", "qqp", t5_mrpc.label_words)
    res = evaluate_transfer(lm, path, t5_mrpc, data_dir, max_examples=5, batch_size=5)
    assert res.source == "qqp"
    assert res.target == "mrpc"
    assert res.prefix == "qqp"
    assert res.examples == 5
    task = get_task("mrpc", data_dir, format="t5")
    task.prefix = "qqp"
    examples = task.load("dev")[:5]
    assert examples[0].input.startswith("qqp sentence1:")
    assert res.metrics == evaluate(lm, task, examples, read_prompt(path).tensor).metrics
    fresh = functools.partial(get_task, "mrpc", data_dir, format="t5")
    assert evaluate_transfer(lm, path, fresh(), data_dir, max_examples=2, prefix="target").prefix == "mrpc"
    assert evaluate_transfer(lm, path, fresh(), data_dir, max_examples=2, prefix="none").prefix == ""


def test_transfer_refuses_other_label_words_and_runs_generation(tmp_path, data_dir):
    lm = tiny_llama()
    sst = _prompt_file(lm, tmp_path / "sst2.safetensors", "sst2", ("negative", "positive"))
    with pytest.raises(SoftPromptError, match="same output format"):
        evaluate_transfer(lm, sst, "mrpc", data_dir)
    squad = _prompt_file(lm, tmp_path / "squad.safetensors", "squad", None)
    res = evaluate_transfer(lm, squad, "bioasq", data_dir, max_examples=2, max_new_tokens=2)
    assert res.target == "bioasq"
    assert set(res.metrics) == {"em", "f1"}
    assert res.prefix is None


def test_transfer_in_domain_score_is_the_source_runs_whole_dev_score(tmp_path):
    from softprompt.experiments.transfer import source_dev_score

    best = {"name": "f1", "value": 49.1, "step": 150, "metrics": {"em": 40.0, "f1": 49.1}}  # on a dev subset
    run = tmp_path / "run"
    run.mkdir()
    prompt = run / "prompt.safetensors"
    assert source_dev_score(prompt, best) == best  # no result.json: the prompt file's own record
    result = {"best_step": 150, "dev_score": {"metrics": {"em": 41.0, "f1": 50.3}, "examples": 300,
                                              "measured_by": "final evaluation"}}
    (run / "result.json").write_text(json.dumps(result))
    assert source_dev_score(prompt, best) == {"name": "f1", "value": 50.3, "step": 150, "metrics": {"em": 41.0, "f1": 50.3},
                                              "examples": 300, "measured_by": "final evaluation"}
    assert source_dev_score(run / "other.safetensors", best) == best  # not the run's kept prompt
    (run / "result.json").write_text(json.dumps({**result, "best_step": 100}))  # another run's result
    assert source_dev_score(prompt, best) == best
    # a run from before result.json held dev_score: its final evaluation's line in metrics.jsonl
    (run / "result.json").write_text(json.dumps({"best_step": 150, "final_metrics": {"em": 41.0, "f1": 50.3}}))
    (run / "metrics.jsonl").write_text(json.dumps({"event": "final_eval", "step": 150, "metrics": {"em": 41.0, "f1": 50.3},
                                                   "examples": 300}) + "\n")
    assert source_dev_score(prompt, best)["examples"] == 300
    (run / "result.json").write_text("{")
    assert source_dev_score(prompt, best) == best
    assert source_dev_score(prompt, None) is None


def test_model_tuning_transfer_scores_the_tuned_copy_on_the_target_in_the_source_format(data_dir):
    lm = tiny_llama()
    qqp = get_task("qqp", data_dir, format="t5")
    rows = get_task("mrpc", data_dir, format="t5")
    rows.prefix = "qqp"  # paraphrase pairs rendered as QQP inputs stand in for QQP's large train file here
    train, source_dev = rows.load("train")[:16], rows.load("train")[16:22]
    config = ModelTuningConfig(learning_rate=1e-3, batch_size=4, max_steps=3, eval_batch_size=4)
    res = model_tuning_transfer(lm, qqp, get_task("mrpc", data_dir, format="t5"), train, source_dev, config,
                                max_examples=5)
    assert (res.source, res.target, res.prefix, res.method, res.prompt) == ("qqp", "mrpc", "qqp", "model tuning", None)
    assert res.budget["updates"] == 3 and res.budget["batch_size"] == 4
    # the same tuning (seeded, deterministic on CPU) scored by hand on MRPC rows with the qqp prefix
    tuned = tune_model(lm, qqp, train, source_dev, config, keep_model=True)
    assert res.source_dev_metric["metrics"] == tuned.final_metrics
    assert res.source_dev_metric["step"] == 3
    target = get_task("mrpc", data_dir, format="t5")
    target.prefix = "qqp"
    examples = target.load("dev")[:5]
    assert res.examples == 5
    assert res.metrics == evaluate(tuned.model, target, examples, None).metrics
    with pytest.raises(SoftPromptError, match="same output format"):
        model_tuning_transfer(lm, get_task("sst2", data_dir), target, train, source_dev, config)


# ---------------------------------------------------------------- report
def test_report_settings_come_from_the_named_file_only(tmp_path):
    from pathlib import Path

    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"prompt_length": 10, "optimizer": "adafactor", "batch_size": 4}))
    s = load_report_settings(path)
    assert (s.prompt_length, s.optimizer, s.batch_size) == (10, "adafactor", 4)
    path.write_text(json.dumps({"lr": 0.3}))
    with pytest.raises(SoftPromptError, match="unknown setting.*lr"):
        load_report_settings(path)
    # a bad value names its setting, before any model loads
    path.write_text(json.dumps({"model_learning_rate": -1e-5}))
    with pytest.raises(SoftPromptError, match="model_learning_rate must be a positive number"):
        load_report_settings(path)
    path.write_text(json.dumps({"model_steps": {"sst2": 0}}))
    with pytest.raises(SoftPromptError, match=r"model_steps\['sst2'\] must be a positive integer"):
        load_report_settings(path)
    path.write_text(json.dumps({"model_length_bands": 1}))
    with pytest.raises(SoftPromptError, match="model_length_bands must be true, false or null"):
        load_report_settings(path)
    # a stray file in /tmp (the old hidden source of settings) changes nothing
    stray = Path("/tmp/softprompt_hparams.json")
    if stray.exists():
        pytest.skip("a real /tmp/softprompt_hparams.json exists; not touching it")
    stray.write_text(json.dumps({"prompt_length": 77, "lr": 9.0}))
    try:
        assert load_report_settings() == ReportSettings()
    finally:
        stray.unlink()


def test_report_run_and_build_on_a_tiny_model(tmp_path, data_dir):
    lm = tiny_llama()
    task = get_task("cb", data_dir)
    settings = ReportSettings(model="tiny", prompt_length=2, batch_size=2, default_steps=2, seeds=2, max_dev=4,
                              eval_batch_size=4, model_learning_rate=1e-3, learning_rate=0.01)
    results = tmp_path / "results.json"
    run_task(None, task, settings, ["majority"], results, tmp_path / "runs", log=lambda m: None)
    with pytest.raises(SoftPromptError, match="model is needed"):
        run_task(None, task, settings, ["design"], results, tmp_path / "runs", log=lambda m: None)
    run_task(lm, task, settings, ["design", "prompt"], results, tmp_path / "runs", command="cmd 1", log=lambda m: None)
    run_task(lm, task, settings, ["ensemble", "model"], results, tmp_path / "runs", command="cmd 2", log=lambda m: None)
    data = load_results(results)
    rec = data["tasks"]["cb"]
    assert set(rec) == {"majority", "design", "prompt-seed0", "prompt-seed1", "ensemble", "model"}
    dev = task.load("dev")[:4]
    assert rec["majority"]["metrics"] == task.compute_metrics([rec["majority"]["label"]] * 4, dev)
    assert rec["prompt-seed1"]["steps"] == 2
    assert rec["ensemble"]["seeds"] == [0, 1]
    assert rec["model"]["dev_examples"] == 4
    assert rec["model"]["steps"] == 2
    assert data["meta"]["settings"]["prompt_length"] == 2
    check = {"config": {"learning_rate": 2e-5, "optimizer": "adamw", "max_steps": 3, "batch_size": 2},
             "dev_examples": 4, "final_metrics": {"accuracy": 75.0}, "train_seconds": 1.0, "command": "lr cmd"}
    md = build_report(data, lr_checks=[check], notes="NOTES HERE")
    assert "| cb | 4 of 56 |" in md
    assert "cmd 1" in md
    assert "cmd 2" in md
    assert "not comparable" in md.lower()
    assert "| 2e-05 | adamw | 3 (2) | 4 | 75.0 |" in md
    assert "lr cmd" in md
    assert "NOTES HERE" in md
    assert "| cb | Read the passage" in md  # the task's hand-written prompt is documented
    with pytest.raises(SoftPromptError, match="run method 'prompt' first"):
        run_task(lm, task, settings, ["ensemble"], tmp_path / "other.json", tmp_path / "runs", log=lambda m: None)


# ---------------------------------------------------------------- CLI
@pytest.fixture
def cli(monkeypatch):
    import softprompt.cli.experiments as ex

    lm = tiny_llama()
    monkeypatch.setattr(ex, "_load", lambda *a, **k: lm)
    return ex.experiments_app, lm


def test_cli_prompt_design_templates_and_model_tune(cli, tmp_path, data_dir):
    app, _ = cli
    runner = CliRunner()
    out = tmp_path / "d.json"
    r = runner.invoke(app, ["prompt-design", "--task", "rte", "--shots", "1", "--max-examples", "3",
                            "--data-dir", str(data_dir), "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["examples"] == 3
    r = runner.invoke(app, ["templates"])
    assert r.exit_code == 0
    assert "| wic |" in r.output
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["model-tune", "--task", "copa", "--steps", "2", "--batch-size", "2", "--max-eval", "3",
                            "--data-dir", str(data_dir), "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["dev_examples"] == 3
    out = tmp_path / "t.json"
    r = runner.invoke(app, ["model-tune", "--task", "mrpc", "--steps", "1", "--batch-size", "2", "--max-eval", "2",
                            "--max-train", "4", "--transfer-to", "qqp", "--transfer-max-examples", "3",
                            "--data-dir", str(data_dir), "--json", str(out)])
    assert r.exit_code == 0, r.output
    record = json.loads(out.read_text())
    assert (record["source"], record["target"], record["method"], record["examples"]) == ("mrpc", "qqp", "model tuning", 3)
    r = runner.invoke(app, ["model-tune", "--task", "mrpc", "--transfer-to", "sst2", "--data-dir", str(data_dir)])
    assert isinstance(r.exception, SoftPromptError)
    assert "the model would be tuned on 'mrpc'" in str(r.exception)
    assert "same output format" in str(r.exception)


def test_cli_ensemble_and_transfer(cli, tmp_path, data_dir):
    app, lm = cli
    runner = CliRunner()
    labels = get_task("mrpc", data_dir).label_words
    paths = [str(_prompt_file(lm, tmp_path / f"q{k}.safetensors", "qqp", labels, length=k + 2)) for k in range(3)]
    out = tmp_path / "e.json"
    r = runner.invoke(app, ["ensemble", *paths, "--max-examples", "4", "--data-dir", str(data_dir), "--json", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["task"] == "qqp"
    assert len(data["per_prompt"]) == 3
    assert "ensemble" in r.output
    r = runner.invoke(app, ["transfer", paths[0], "--target", "mrpc", "--max-examples", "3", "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    assert "qqp -> mrpc" in r.output


def test_cli_report_build(tmp_path):
    from softprompt.cli.experiments import experiments_app

    r = CliRunner().invoke(experiments_app, ["report-build", "--results", str(tmp_path / "none.json"),
                                             "--out", str(tmp_path / "r.md")])
    assert r.exit_code != 0
    assert isinstance(r.exception, SoftPromptError)


# ---------------------------------------------------------------- the real model
@pytest.mark.real_model
def test_real_model_runs_cb_rte_copa_mrpc_for_a_few_steps(smollm2, data_dir, tmp_path):
    """Acceptance: on smollm2, prompt tuning (2 steps, batch 2, p=4) then evaluation on 8 dev
    examples for CB, RTE, COPA and MRPC; the hand-written prompt on the same examples; and
    model tuning for 2 steps on one task. The shared model stays frozen throughout."""
    from softprompt.core.config import TrainConfig
    from softprompt.training.trainer import Trainer

    start = time.perf_counter()
    weight = smollm2.model.model.layers[0].mlp.up_proj.weight.clone()
    smollm2.max_input_tokens = 128
    data = {}
    for name in ("cb", "rte", "copa", "mrpc"):
        task = get_task(name, data_dir)
        train, dev = data[name] = task.load("train")[:16], task.load("dev")[:8]
        prompt = SoftPrompt.initialise(smollm2, PromptConfig(length=4, init="class-label" if task.label_words
                                                             else "sampled-vocab"), task.label_words)
        config = TrainConfig(optimizer="adam", learning_rate=3e-3, batch_size=2, max_steps=2, eval_every=2,
                             max_input_tokens=128, eval_batch_size=8)
        result = Trainer(smollm2, prompt, task, train, dev, config, tmp_path / name, show_progress=False,
                         eval_at_start=False).train()
        assert result.steps == 2
        assert task.primary_metric in result.best_metrics
        design = pd.evaluate_prompt_design(smollm2, task, dev, batch_size=8)
        assert design.metrics == task.compute_metrics(design.predictions, dev)
        assert all(p in dev[i].options for i, p in enumerate(design.predictions))
    cb_train, cb_dev = data["cb"]  # CB's own rows (not the last task's)
    res = tune_model(smollm2, get_task("cb", data_dir), cb_train, cb_dev,
                     ModelTuningConfig(batch_size=2, max_steps=2, max_input_tokens=128, eval_batch_size=8))
    assert res.final_metrics is not None
    assert torch.equal(smollm2.model.model.layers[0].mlp.up_proj.weight, weight)
    assert all(not p.requires_grad for p in smollm2.model.parameters())
    assert not smollm2.model.training
    assert time.perf_counter() - start < 300


def test_defaults_method_and_summary_report_on_a_tiny_model(tmp_path, data_dir, monkeypatch):
    from softprompt.experiments.report import TARGET_MARGIN, build_summary, summary_rows

    lm = tiny_llama()
    task = get_task("cb", data_dir)
    settings = ReportSettings(model="tiny", max_dev=6, eval_batch_size=4, max_input_tokens=32,
                              train_split_per_task={"cb": "dev"})
    results = tmp_path / "results.json"
    # a tiny budget: the defaults method takes the library's auto settings, so shrink the run via the profile
    import softprompt.training.defaults as defaults

    tiny_profile = defaults.DeviceProfile("cpu", prompt_length=2, batch_size=2, max_steps=2, eval_every=1,
                                          intermediate_eval_examples=3, length_bands=True)
    monkeypatch.setattr(defaults, "CPU_PROFILE", tiny_profile)
    run_task(lm, task, settings, ["majority", "design", "defaults"], results, tmp_path / "runs",
             command="cmd d", log=lambda m: None)
    rec = load_results(results)["tasks"]["cb"]
    tuned = rec["defaults"]
    assert tuned["steps"] == 2
    assert tuned["train_split"] == "dev"
    assert tuned["settings"]["sources"]["batch_size"] == "cpu profile"
    assert tuned["settings"]["sources"]["learning_rate"].startswith("rule: ")
    assert [e[2] for e in tuned["evals"]] == [3, 3, 3]  # evaluations on the dev subset
    from softprompt.core.prompt_file import load_prompt
    from softprompt.evaluation.evaluator import evaluate

    best = load_prompt(tuned["prompt_path"], lm).tensor
    assert tuned["metrics"] == evaluate(lm, task, task.load("dev")[:6], best).metrics  # the whole-dev final score
    assert tuned["primary"] == tuned["metrics"][task.primary_metric]
    row = summary_rows(load_results(results))[0]
    assert row["margin"] == pytest.approx(tuned["primary"] - max(rec["majority"]["primary"], rec["design"]["primary"]))
    md = build_summary({"tiny": load_results(results)})
    assert "## tiny" in md
    assert f"{row['margin']:+.1f}" in md
    assert (" ✓" in md) == (row["margin"] >= TARGET_MARGIN)
    assert "cmd d" in md


def test_a_finished_cli_run_is_imported_as_the_defaults_result(tmp_path, data_dir):
    import softprompt as sp
    from softprompt.experiments.report import import_run

    lm = tiny_llama()
    task = get_task("cb", data_dir)
    result = sp.train(lm, task, tmp_path / "run", PromptConfig(length=2, init="sampled-vocab"),
                      sp.TrainConfig(batch_size=2, max_steps=2, eval_every=2, learning_rate=0.01),
                      max_train_examples=4, show_progress=False, run_info={"command": "softprompt train --task cb"})
    record = import_run(tmp_path / "r.json", task, tmp_path / "run", "tiny")
    assert record["metrics"] == (result.final_metrics or result.best_metrics)
    assert record["primary"] == record["metrics"][task.primary_metric]
    assert record["command"] == "softprompt train --task cb"
    assert record["dev_examples"] == 56
    assert record["train_examples"] == 250
    assert load_results(tmp_path / "r.json")["meta"]["model"] == "tiny"


def test_summary_writes_its_figures_and_the_scale_figure_once_two_models_share_a_task(tmp_path):
    from softprompt.experiments.report import write_summary

    def rec(value):
        return {"primary": value, "metrics": {"accuracy": value}}

    def results(model, parameters, tasks):
        return {"meta": {"model": model, "parameters": parameters},
                "tasks": {t: {"majority": rec(50.0), "design": rec(60.0), "defaults": rec(70.0 + i)}
                          for i, t in enumerate(tasks)}}

    small, large = tmp_path / "small.json", tmp_path / "large.json"
    small.write_text(json.dumps(results("small", 1_000_000, ["sst2", "rte"])))
    large.write_text(json.dumps(results("large", 2_000_000, ["rte"])))
    out = write_summary([small], tmp_path / "reports" / "results.md")
    assert "figures/results_summary.png" in out.read_text()
    assert "results_scale.png" not in out.read_text()  # one model: no scale figure
    assert (tmp_path / "reports" / "figures" / "results_summary.png").read_bytes()[:4] == b"\x89PNG"
    out = write_summary([small, large], tmp_path / "reports" / "results.md")
    assert "figures/results_scale.png" in out.read_text()
    assert (tmp_path / "reports" / "figures" / "results_scale.png").read_bytes()[:4] == b"\x89PNG"
    assert "learning rate (a short check)" not in out.read_text()
    # model tuning's lr check: read from its folder, the lr of the results file's own model-tuning run marked
    data = json.loads(large.read_text())
    data["tasks"]["rte"]["model"] = {**rec(80.0), "steps": 300, "learning_rate": 5e-5}
    large.write_text(json.dumps(data))
    (tmp_path / "lr").mkdir()
    for lr in (5e-5, 1e-4):
        (tmp_path / "lr" / f"{lr:g}.json").write_text(json.dumps({
            "task": "rte", "steps": 60, "final_metrics": {"accuracy": 60.0}, "losses": [[60, 0.5]], "model": "large",
            "config": {"learning_rate": lr, "batch_size": 8}, "dev_examples": 100, "command": f"tune {lr:g}"}))
    text = write_summary([small, large], tmp_path / "reports" / "results.md", lr_check_dir=tmp_path / "lr").read_text()
    assert "| large | rte | 5e-05 * | 60 (8) |" in text and "| large | rte | 0.0001 | 60 (8) |" in text


def test_scale_section_orders_models_by_size_and_computes_the_gap():
    from softprompt.experiments.report import scale_section

    def results(params, design, tuned, model):
        rec = {"design": {"primary": design}, "defaults": {"primary": tuned}}
        if model is not None:
            rec["model"] = {"primary": model, "steps": 300, "learning_rate": 5e-5}
        return {"meta": {"parameters": params}, "tasks": {"sst2": rec, "only-here": rec}}

    text = scale_section({"big": results(270e6, 60.0, 89.5, 91.0), "small": results(135e6, 68.0, 86.0, 90.0)})
    rows = [line for line in text.splitlines() if line.startswith("| sst2")]
    assert rows == ["| sst2 | small | 135M | 68.0 | 86.0 | 90.0 (300, 5e-05) | +4.0 |",
                    "| sst2 | big | 270M | 60.0 | 89.5 | 91.0 (300, 5e-05) | +1.5 |"]
    assert scale_section({"one": results(1e6, 1.0, 2.0, None)}) == ""


def test_scale_figure_draws_a_method_recorded_on_one_model_as_a_lone_point():
    from softprompt.experiments.report import scale_points

    def results(params, model):
        rec = {"design": {"primary": 60.0}, "defaults": {"primary": 70.0}}
        if model is not None:
            rec["model"] = {"primary": model}
        return {"meta": {"parameters": params}, "tasks": {"rte": rec}}

    by_model = {"big": results(270e6, None), "small": results(135e6, 69.0)}
    assert scale_points(by_model, "rte", "model") == [(135.0, 69.0)]
    assert scale_points(by_model, "rte", "defaults") == [(135.0, 70.0), (270.0, 70.0)]
    assert scale_points(by_model, "sst2", "defaults") == []


def test_report_commands_reproduce_runs_recorded_under_another_batching_default():
    from softprompt.experiments.study_sections import reproducing_command

    command = "softprompt train --task rte --out runs/rte"
    today = TrainConfig.group_by_length

    def record(settings):
        return {"method": "defaults", "command": command, "settings": settings}

    bands = CPU_PROFILE.length_bands  # the report's runs ran on a CPU
    assert reproducing_command(record({"train": {"group_by_length": today, "length_bands": bands}})) == command
    other = "--random-batches" if today else "--group-by-length"
    assert reproducing_command(record({"train": {"group_by_length": not today, "length_bands": bands}})) == \
        f"{command} {other}"
    other_bands = "--length-bands" if not bands else "--no-length-bands"
    assert reproducing_command(record({"train": {"group_by_length": today, "length_bands": not bands}})) == \
        f"{command} {other_bands}"
    # a run from before the settings existed drew random batches, each in one padded pass
    legacy = reproducing_command(record({"train": {"batch_size": 8}}))
    assert legacy == command + (" --random-batches" if today else "") + (" --no-length-bands" if bands else "")
    assert reproducing_command({"method": "design", "command": "x"}) == "x"
    # model tuning: report-run's record, a model-tune --json record and its transfer record
    run = "python -m softprompt.cli.experiments report-run --task rte --methods model"
    tune = "python -m softprompt.cli.experiments model-tune --task rte --steps 30"
    flag = "" if bands else " --no-length-bands"  # what today's CPU default needs to recompute a banded run
    assert reproducing_command({"method": "model", "command": run, "length_bands": True}) == \
        run + flag.replace("length", "model-length")
    assert reproducing_command({"method": "model", "command": run}) == \
        run + (" --no-model-length-bands" if bands else "")  # recorded before the setting: one padded pass
    assert reproducing_command({"command": tune, "config": {"length_bands": True}}) == tune + flag
    assert reproducing_command({"command": tune, "config": {}}) == tune + (" --no-length-bands" if bands else "")
    assert reproducing_command({"method": "model tuning", "command": tune + " --transfer-to mrpc",
                                "budget": {"length_bands": False}}) == \
        tune + " --transfer-to mrpc" + (" --no-length-bands" if bands else "")
    assert reproducing_command({"command": tune + " --no-length-bands", "config": {}}) == tune + " --no-length-bands"


def test_report_run_shows_its_evaluations_and_training_in_a_log(tmp_path, data_dir, capsys):
    # a log file (no terminal) gets a plain line; the evaluation of a whole BoolQ dev set takes minutes
    settings = ReportSettings(model="tiny", max_dev=5, eval_batch_size=2)
    task = get_task("cb", data_dir)
    run_task(tiny_llama(), task, settings, ["design"], tmp_path / "results.json", tmp_path / "runs",
             log=lambda m: None, show_progress=True)
    assert "[cb prompt design] 5/5 examples (100%)" in capsys.readouterr().err
    run_task(tiny_llama(), task, settings, ["design"], tmp_path / "results.json", tmp_path / "runs",
             log=lambda m: None)
    assert "prompt design]" not in capsys.readouterr().err
    # and the training runs (a `defaults` run takes 20 minutes and more on a CPU)
    quick = ReportSettings(model="tiny", max_dev=4, eval_batch_size=2, default_steps=2, seeds=1, prompt_length=2)
    run_task(tiny_llama(), task, quick, ["prompt"], tmp_path / "results.json", tmp_path / "runs",
             log=lambda m: None, show_progress=True)
    assert "2/2 steps (100%)" in capsys.readouterr().err

"""The ensemble and transfer sections of the report: every number from the JSON records."""
import json

import pytest

from softprompt.errors import SoftPromptError
from softprompt.experiments.study_sections import (
    ensemble_section,
    load_json_records,
    record_model,
    transfer_section,
)


def test_sections_show_the_recorded_numbers(tmp_path):
    (tmp_path / "ens").mkdir()
    (tmp_path / "ens" / "sst2.json").write_text(json.dumps({
        "task": "sst2", "primary_metric": "accuracy", "per_prompt": [{"accuracy": 80.0}, {"accuracy": 84.5}],
        "average": {"accuracy": 82.25}, "best": {"accuracy": 84.5}, "ensemble": {"accuracy": 85.0}, "examples": 300,
        "seconds": 12.34, "separate_seconds": 20.0, "prompts": ["a.safetensors", "b.safetensors"],
        "command": "softprompt experiment ensemble a b"}))
    trained = [{"length": 20, "init": "class-label", "updates": 300, "kept_at_update": 200, "seed": s,
                "learning_rate": 0.0515} for s in (0, 1)] + [
               {"length": 5, "init": "random-uniform", "updates": 100, "kept_at_update": 100, "seed": 0,
                "learning_rate": 0.0515}]
    (tmp_path / "ens" / "sst2-full.json").write_text(json.dumps({
        "task": "sst2", "primary_metric": "accuracy", "per_prompt": [{"accuracy": 89.0}, {"accuracy": 90.0}, {"accuracy": 80.0}],
        "average": {"accuracy": 86.3}, "best": {"accuracy": 90.0}, "ensemble": {"accuracy": 90.5}, "examples": 872,
        "seconds": 400.0, "separate_seconds": None, "prompts": ["s0", "s1", "r0"], "trained": trained,
        "command": "softprompt experiment ensemble s0 s1 r0"}))
    (tmp_path / "tr").mkdir()
    (tmp_path / "tr" / "mrpc-qqp.json").write_text(json.dumps({
        "source": "mrpc", "target": "qqp", "primary_metric": "accuracy", "metrics": {"accuracy": 61.0},
        "source_dev_metric": {"metrics": {"accuracy": 70.1}, "step": 300}, "examples": 500, "prompt": "p.safetensors",
        "command": "softprompt experiment transfer p --target qqp --model smollm2"}))
    (tmp_path / "tr" / "a-model.json").write_text(json.dumps({  # sorts first by file name, shown after the prompt
        "source": "mrpc", "target": "qqp", "primary_metric": "accuracy", "metrics": {"accuracy": 66.5},
        "source_dev_metric": {"metrics": {"accuracy": 80.25}, "step": 300, "examples": 408}, "examples": 500, "prompt": None,
        "method": "model tuning", "budget": {"updates": 300, "batch_size": 8, "optimizer": "adamw",
                                             "learning_rate": 5e-05, "trainable_parameters": 134515008},
        "model": "smollm2", "command": "softprompt experiment model-tune --task mrpc --transfer-to qqp"}))
    (tmp_path / "tr" / "squad-bioasq.json").write_text(json.dumps({  # a generation task: F1 and EM
        "source": "squad", "target": "bioasq", "primary_metric": "f1", "metrics": {"em": 20.0, "f1": 31.26},
        "source_dev_metric": {"metrics": {"em": 40.0, "f1": 52.04}, "step": 100, "examples": 250}, "examples": 300,
        "prompt": "s.safetensors", "command": "softprompt experiment transfer s --target bioasq --model smollm2"}))
    ens = ensemble_section(load_json_records(tmp_path / "ens"))
    assert "| - | sst2 | 2 | - | 300 | 80.0, 84.5 | 82.2 | 84.5 | 85.0 | 12.3 | 20.0 |" in ens  # predates `trained`
    assert ("| - | sst2 | 3 | 20 tokens, class-label, 300 updates, lr 0.0515, seeds 0, 1; 5 tokens, random-uniform, "
            "100 updates, lr 0.0515, seed 0 | 872 | 89.0, 90.0, 80.0 | 86.3 | 90.0 | 90.5 | 400.0 | - |") in ens
    assert "softprompt experiment ensemble a b" in ens
    tr = transfer_section(load_json_records(tmp_path / "tr"))
    rows = [ln for ln in tr.splitlines() if ln.startswith("| smollm2 | mrpc -> qqp")]
    assert rows[0].startswith("| smollm2 | mrpc -> qqp | prompt tuning | accuracy | 70.1 | - | 300 | 61.0 | 500 | `p.safetensors` |")
    assert rows[1].startswith("| smollm2 | mrpc -> qqp | model tuning | accuracy | 80.2 | 408 | 300 | 66.5 | 500 | "
                              "135M weights, 300 updates of 8, adamw lr 5e-05 |")
    assert "| smollm2 | squad -> bioasq | prompt tuning | f1 / em | 52.0 / 40.0 | 250 | 100 | 31.3 / 20.0 | 300 |" in tr
    assert tr.index("transfer p --target qqp --model smollm2") < tr.index("model-tune --task mrpc --transfer-to qqp")
    assert load_json_records(tmp_path / "missing") == []
    assert record_model({"command": "x ensemble a b -m gemma3-270m --json o"}) == "gemma3-270m"
    assert record_model({"model": "smollm2", "command": "x --model gemma3-270m"}) == "smollm2"
    assert record_model({"command": "python -m softprompt.cli.experiments interpret a b"}) == "-"
    assert record_model({"command": ".venv/bin/python -m softprompt.cli.experiments ensemble a -m smollm2"}) == "smollm2"


def test_a_broken_record_names_its_file(tmp_path):
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(SoftPromptError, match="x.json"):
        load_json_records(tmp_path)


def test_variant_runs_sit_beside_the_defaults_run_with_what_changed(tmp_path):
    from softprompt.experiments.study_sections import changed_settings, load_variant_runs, variant_section

    base = {"prompt": {"length": 20, "init": "class-label"},
            "train": {"learning_rate": 0.05, "batch_size": 8, "group_by_length": True, "objective": "lm", "extra": {}}}
    variant = {"prompt": dict(base["prompt"]), "train": {**base["train"], "objective": "choices", "extra": {"x": 1}}}
    assert changed_settings(base, variant) == ["objective: lm -> choices"]
    old = {"prompt": base["prompt"], "train": {"learning_rate": 0.05, "batch_size": 8}}  # before the two settings existed
    assert changed_settings(old, variant) == ["group_by_length: False -> True", "objective: lm -> choices"]
    assert changed_settings(old, {"prompt": old["prompt"], "train": {"batch_size": 8, "new_knob": 3}}) == [
        "learning_rate: 0.05 -> ?", "new_knob: ? -> 3"]
    assert changed_settings(base, base) == []

    run = tmp_path / "variants" / "gemma3-270m" / "copa" / "objective-choices"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({
        "settings": variant, "final_metrics": None, "best_metrics": {"accuracy": 76.0}, "best_step": 200, "seconds": 540.0,
        "run": {"command": "softprompt train --task copa --objective choices", "model_load_seconds": 60.0}}))
    results = {"gemma3-270m": {"tasks": {"copa": {
        "defaults": {"settings": base, "metrics": {"accuracy": 71.0}, "wall_seconds": 570.0},
        "design": {"metrics": {"accuracy": 72.0}}}}}}
    runs = load_variant_runs(tmp_path / "variants")
    assert [(r["model"], r["task"], r["name"]) for r in runs] == [("gemma3-270m", "copa", "objective-choices")]
    text = variant_section(runs, results, {})
    assert "| gemma3-270m | copa | objective: lm -> choices | 72.0 | 71.0 | 76.0 | 200 | 9.5 -> 10.0 min |" in text
    assert "    softprompt train --task copa --objective choices --group-by-length" in text  # grouped: not today's default
    assert load_variant_runs(tmp_path / "none") == []
    (run / "result.json").write_text("{")
    with pytest.raises(SoftPromptError, match="objective-choices/result.json"):
        load_variant_runs(tmp_path / "variants")


def test_model_lr_check_rows_mark_the_lr_the_scale_table_used(tmp_path):
    from softprompt.experiments.study_sections import model_lr_section

    def record(lr: float, accuracy: float, loss: float) -> dict:
        return {"task": "sst2", "steps": 60, "final_metrics": {"accuracy": accuracy}, "losses": [[10, 2.0], [60, loss]],
                "config": {"learning_rate": lr, "batch_size": 8}, "dev_examples": 200, "model": "gemma3-270m",
                "command": f"x model-tune --task sst2 --lr {lr:g}"}
    for lr, acc, loss in ((2e-4, 71.0, 0.9), (5e-5, 80.5, 0.41), (2e-5, 77.25, 0.6)):
        (tmp_path / f"lr{lr:g}.json").write_text(json.dumps(record(lr, acc, loss)))
    text = model_lr_section(load_json_records(tmp_path), {("gemma3-270m", "sst2"): 5e-5, ("smollm2", "sst2"): 2e-5})
    rows = [ln for ln in text.splitlines() if ln.startswith("| gemma3-270m |")]
    assert [r.split(" | ")[2] for r in rows] == ["2e-05", "5e-05 *", "0.0002"]  # ascending lr; only gemma's own lr marked
    assert rows[1].startswith("| gemma3-270m | sst2 | 5e-05 * | 60 (8) | 0.410 | accuracy 80.5 | 200 |")
    assert text.index("--lr 2e-05") < text.index("--lr 5e-05") < text.index("--lr 0.0002")


def test_study_figures_draw_the_recorded_numbers(tmp_path):
    from softprompt.experiments.study_figures import (
        ensemble_figure,
        ensemble_rows,
        transfer_figure,
        transfer_groups,
    )

    ens = {"task": "sst2", "primary_metric": "accuracy", "per_prompt": [{"accuracy": 80.0}, {"accuracy": 84.5}],
           "average": {"accuracy": 82.25}, "best": {"accuracy": 84.5}, "ensemble": {"accuracy": 85.0}, "examples": 300,
           "model": "smollm2"}
    assert ensemble_rows([ens]) == [{"label": "smollm2 / sst2\n(300 dev examples)", "metric": "accuracy",
                                     "each": [80.0, 84.5], "average": 82.25, "best": 84.5, "ensemble": 85.0}]
    trained = {**ens, "trained": [{"updates": 300, "seed": 0}, {"updates": 300, "seed": 1}]}  # the prompts' budget
    assert ensemble_rows([trained])[0]["label"] == "smollm2 / sst2\n(300 dev examples, prompts of 300 updates)"
    prompt = {"source": "squad", "target": "bioasq", "primary_metric": "f1", "metrics": {"em": 20.0, "f1": 31.0},
              "source_dev_metric": {"metrics": {"em": 40.0, "f1": 52.0}}, "model": "smollm2"}
    model = {**prompt, "method": "model tuning", "metrics": {"f1": 35.0}, "source_dev_metric": None}
    assert transfer_groups([model, prompt]) == {
        "smollm2: squad -> bioasq (f1)": {"prompt tuning": (52.0, 31.0), "model tuning": (None, 35.0)}}
    for path in (ensemble_figure([ens], tmp_path / "e.png"), transfer_figure([prompt, model], tmp_path / "t.png")):
        assert path.read_bytes()[:4] == b"\x89PNG"

"""The command line end to end on a tiny model saved as a local folder."""
import json
import sys

import pytest
import torch

from softprompt.cli.main import main


def run(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["softprompt", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(model_dir, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    sys_argv = sys.argv
    sys.argv = ["softprompt", "train", "--task", "sst2", "--model", str(model_dir), "--data-dir", str(data_dir),
                "--out", str(out), "-p", "3", "--steps", "2", "--batch-size", "4", "--eval-every", "2",
                "--max-train", "16", "--max-eval", "8", "--quiet"]
    try:
        main()
    finally:
        sys.argv = sys_argv
    return out


def test_train_writes_run_folder_and_report(trained):
    assert {"prompt.safetensors", "checkpoint.pt", "metrics.jsonl", "result.json"} <= {p.name for p in trained.iterdir()}
    result = json.loads((trained / "result.json").read_text())
    assert result["steps"] == 2
    assert result["initial_metrics"] is not None
    assert result["run"]["command"].startswith("softprompt train --task sst2 ")
    assert result["run"]["model_load_seconds"] >= 0
    # the flags given are marked as the user's; the learning rate came from the rule
    assert result["settings"]["sources"]["batch_size"] == "user"
    assert result["settings"]["sources"]["learning_rate"].startswith("rule: ")


def test_eval_predict_inspect(trained, model_dir, data_dir, monkeypatch, capsys, tmp_path):
    prompt = trained / "prompt.safetensors"
    code, out, _ = run(monkeypatch, capsys, "eval", prompt, "--model", model_dir, "--data-dir", data_dir,
                       "--max-examples", "8", "--json", tmp_path / "r.json")
    assert code == 0
    assert "accuracy" in out
    assert json.loads((tmp_path / "r.json").read_text())["examples"] == 8
    code, out, _ = run(monkeypatch, capsys, "predict", prompt, "a great movie", "bad plot", "--model", model_dir, "--json")
    assert code == 0
    assert out.count('"label"') == 2
    code, out, _ = run(monkeypatch, capsys, "inspect", prompt, "--model", model_dir, "--k", "2")
    assert code == 0
    assert "embedding_fingerprint" in out
    assert "nearest tokens" in out


def test_export_import_round_trip(trained, monkeypatch, capsys, tmp_path):
    prompt = trained / "prompt.safetensors"
    code, _, err = run(monkeypatch, capsys, "export", prompt, tmp_path / "peft")
    assert code != 0  # the tiny model's tokenizer adds BOS: a plain export would differ in PEFT
    assert "--fold-bos" in err
    assert run(monkeypatch, capsys, "export", prompt, tmp_path / "peft", "--fold-bos")[0] == 0
    assert (tmp_path / "peft" / "adapter_config.json").exists()
    assert run(monkeypatch, capsys, "import", tmp_path / "peft", tmp_path / "back.safetensors")[0] == 0
    from softprompt.core.prompt_file import read_prompt
    assert torch.equal(read_prompt(tmp_path / "back.safetensors").tensor, read_prompt(prompt).tensor)


def test_resume_flag(trained, model_dir, data_dir, monkeypatch, capsys):
    code, out, err = run(monkeypatch, capsys, "train", "--task", "sst2", "--model", model_dir, "--data-dir", data_dir,
                         "--out", trained, "-p", "3", "--steps", "4", "--batch-size", "4", "--eval-every", "2",
                         "--max-train", "16", "--max-eval", "8", "--quiet", "--resume")
    assert code == 0, err
    assert json.loads((trained / "result.json").read_text())["steps"] == 4


def test_a_finished_run_goes_on_with_resume_and_more_steps(model_dir, data_dir, monkeypatch, capsys, tmp_path):
    args = ["train", "--task", "sst2", "--model", model_dir, "--data-dir", data_dir, "--out", tmp_path, "-p", "3",
            "--batch-size", "4", "--eval-every", "2", "--max-train", "16", "--max-eval", "8", "--eval-subset", "4", "--quiet"]
    assert run(monkeypatch, capsys, *args, "--steps", "2")[0] == 0
    code, out, err = run(monkeypatch, capsys, *args, "--steps", "4", "--resume")
    assert code == 0, err
    # the 2-update run's final evaluation on the whole dev set is dropped: the log holds the longer run's only
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["examples"]) for r in log if r["event"] == "final_eval"] == [(4, 8)]
    assert [r["step"] for r in log if r["event"] == "eval"] == [0, 2, 4]


def test_a_refused_resume_names_the_flag_that_restores_the_setting(model_dir, data_dir, monkeypatch, capsys, tmp_path):
    args = ["train", "--task", "sst2", "--model", model_dir, "--data-dir", data_dir, "--out", tmp_path, "-p", "3",
            "--steps", "2", "--eval-every", "2", "--max-train", "16", "--eval-subset", "4", "--quiet"]
    assert run(monkeypatch, capsys, *args, "--batch-size", "4")[0] == 0
    for changed, hint in [(["--batch-size", "2"], "(pass --batch-size 4)"),
                          (["--batch-size", "4", "--group-by-length"], "(pass --random-batches)"),
                          (["--batch-size", "4", "--max-eval", "8"], "(leave out --max-eval)")]:
        code, _, err = run(monkeypatch, capsys, *args, *changed, "--steps", "4", "--resume")
        assert code == 2 and "cannot resume" in err and hint in " ".join(err.split()), err


def test_train_with_a_residual_network_and_a_linear_schedule(model_dir, data_dir, monkeypatch, capsys, tmp_path):
    code, out, err = run(monkeypatch, capsys, "train", "--task", "sst2", "--model", model_dir, "--data-dir", data_dir,
                         "--out", tmp_path, "-p", "3", "--steps", "2", "--batch-size", "4", "--eval-every", "2",
                         "--max-train", "16", "--max-eval", "8", "--quiet", "--reparam", "residual",
                         "--reparam-hidden", "8", "--lr-schedule", "linear")
    assert code == 0, err
    train = json.loads((tmp_path / "result.json").read_text())["settings"]["train"]
    assert (train["reparameterization"], train["reparam_hidden"], train["lr_schedule"]) == ("residual", 8, "linear")
    table = "".join(out.replace("│", "").split())  # the report's cells, unwrapped
    assert "lrschedulelinear" in table and "reparameterizationresidual" in table  # the departures from the paper
    assert torch.load(tmp_path / "checkpoint.pt")["reparameterization"]["down.weight"].shape[0] == 8


@pytest.mark.parametrize("args,needle", [
    (["train", "--task", "nosuchtask", "--out", "x"], "unknown task 'nosuchtask'"),
    (["train", "--task", "sst2", "--out", "x", "--data-dir", "/nonexistent"], "/nonexistent"),
    (["train", "--task", "sst2", "--out", "x", "-p", "0"], "length"),
    (["train", "--task", "sst2", "--out", "x", "--init", "zeros"], "init"),
    (["train", "--task", "sst2", "--out", "x", "--reparam", "mlp"], "reparameterization"),
    (["train", "--task", "sst2", "--out", "x", "--lr-schedule", "cosine"], "lr_schedule"),
    (["inspect", "/no/such/prompt.safetensors"], "not found"),
    (["eval", "--no-prompt"], "--task"),
])
def test_bad_arguments_give_one_line_errors(args, needle, monkeypatch, capsys, data_dir):
    if "--data-dir" not in args and args[0] == "train":
        args = args + ["--data-dir", str(data_dir)]
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_existing_run_is_not_overwritten_by_accident(trained, model_dir, data_dir, monkeypatch, capsys):
    before = (trained / "checkpoint.pt").read_bytes()
    code, _, err = run(monkeypatch, capsys, "train", "--task", "sst2", "--model", model_dir, "--data-dir", data_dir,
                       "--out", trained, "--steps", "1")
    assert code == 2
    assert "--resume" in err
    assert "--overwrite" in err
    assert (trained / "checkpoint.pt").read_bytes() == before


def test_unknown_model_is_one_line_error(monkeypatch, capsys, data_dir, tmp_path):
    code, _, err = run(monkeypatch, capsys, "train", "--task", "sst2", "--out", tmp_path, "--data-dir", data_dir,
                       "--model", str(tmp_path / "no-model-here.gguf"))
    assert code == 2
    assert "no-model-here.gguf" in err
    assert "Traceback" not in err


def test_malformed_data_row_names_file_and_line(monkeypatch, capsys, tmp_path, model_dir):
    folder = tmp_path / "glue" / "SST-2"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("sentence\tlabel\ngood movie\t1\nbad movie\t7\n")
    code, _, err = run(monkeypatch, capsys, "train", "--task", "sst2", "--out", tmp_path / "run", "--data-dir", tmp_path,
                       "--model", model_dir)
    assert code == 2
    assert "train.tsv:3" in err
    assert "label" in err


def test_every_command_has_help(monkeypatch, capsys):
    for command in ["train", "eval", "predict", "inspect", "export", "import", "tasks"]:
        code, out, _ = run(monkeypatch, capsys, command, "--help")
        assert code == 0
        assert "Usage" in out

"""`softprompt serve` / `softprompt client` and examples/client.py, against a tiny model on loopback."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import typer
from tiny import tiny_llama
from typer.testing import CliRunner

from softprompt.cli.serve import client_app, serve_command
from softprompt.core.prompt_file import metadata_for, save_prompt
from softprompt.errors import SoftPromptError
from softprompt.serving.app import create_app
from softprompt.serving.background import serve_in_thread
from softprompt.serving.settings import ServerSettings

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def write_prompt(lm, folder: Path, name: str, labels, seed: int) -> Path:
    tensor = (torch.rand(3, lm.hidden_size, generator=torch.Generator().manual_seed(seed)) - 0.5)
    return save_prompt(folder / f"{name}.safetensors", tensor, metadata_for(lm, tensor, task=name, label_words=labels))


@pytest.fixture(scope="module")
def lm():
    return tiny_llama()


@pytest.fixture(scope="module")
def live(lm, tmp_path_factory):
    folder = tmp_path_factory.mktemp("prompts")
    write_prompt(lm, folder, "sst2", ["positive", "negative"], 0)
    write_prompt(lm, folder, "boolq", ["yes", "no"], 1)
    spare = write_prompt(lm, tmp_path_factory.mktemp("spare"), "extra", ["true", "false"], 2)
    app = create_app(lm, folder, ServerSettings(admin_token="adm", max_wait_ms=2))
    with serve_in_thread(app) as url:
        assert url.startswith("http://127.0.0.1:")
        yield url, spare


def failed(result, text: str) -> bool:
    """User errors are SoftPromptErrors: cli.main prints them in one line and exits 2."""
    return isinstance(result.exception, SoftPromptError) and text in str(result.exception)


def cli(url, *args, admin=None):
    extra = ["--admin-token", admin] if admin else []
    return CliRunner().invoke(client_app, ["--url", url, *extra, *args], env={"SOFTPROMPT_API_TOKEN": ""})


def test_client_commands(live):
    url, spare = live
    r = cli(url, "health")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["prompts"] >= 2
    r = cli(url, "classify", "sst2", "the movie was great", "a dull plot")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert len(out["results"]) == 2
    assert out["results"][0]["label"] in ("positive", "negative")
    r = cli(url, "classify", "sst2", "fun", "--label", "good", "--label", "bad")
    assert json.loads(r.output)["labels"] == ["good", "bad"]
    r = cli(url, "generate", "boolq", "is it good ?", "--max-new-tokens", "3")
    assert r.exit_code == 0
    assert len(json.loads(r.output)["results"]) == 1
    r = cli(url, "score", "boolq", "is it good ?", "yes", "no")
    assert r.exit_code == 0
    assert [x["target"] for x in json.loads(r.output)["results"]] == ["yes", "no"]
    r = cli(url, "upload", "extra", str(spare))
    assert failed(r, "401")  # no admin token
    r = cli(url, "upload", "extra", str(spare), admin="adm")
    assert r.exit_code == 0, r.output
    assert "extra" in [p["name"] for p in json.loads(cli(url, "prompts").output)["prompts"]]
    assert json.loads(cli(url, "show", "extra").output)["label_words"] == ["true", "false"]
    r = cli(url, "delete", "extra", admin="adm")
    assert r.exit_code == 0
    assert json.loads(r.output) == {"deleted": "extra"}
    assert failed(cli(url, "show", "extra"), "404")


def test_client_unreachable_server():
    assert failed(cli("http://127.0.0.1:9", "health"), "cannot reach")  # discard port: nothing listens


def test_example_client_script(live, capsys):
    url, spare = live
    spec = importlib.util.spec_from_file_location("example_client", ROOT / "examples" / "client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--url", url, "--prompt", "sst2", "the film was fun"]) == 0
    out = capsys.readouterr().out
    assert "[sst2]" in out
    assert "log-likelihoods" in out
    assert module.main(["--url", url, "--admin-token", "adm", "--upload", str(spare), "--prompt", "extra"]) == 0
    assert "uploaded 'extra'" in capsys.readouterr().out


def test_serve_command_wiring(lm, tmp_path, monkeypatch):
    import uvicorn

    import softprompt.core.loading as loading

    write_prompt(lm, tmp_path, "sst2", ["positive", "negative"], 0)
    calls = {}
    monkeypatch.setattr(loading, "load_model", lambda name, device, dtype: calls.setdefault("model", (name, device, dtype)) and lm)
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, log_level: calls.update(app=app, host=host, port=port))
    app = typer.Typer()
    app.command("serve")(serve_command)
    app.command("other")(lambda: None)  # so that "serve" stays a subcommand
    r = CliRunner().invoke(app, ["serve", "--model", "tiny", "--prompts", str(tmp_path), "--port", "8123",
                                 "--max-batch-size", "7", "--batching", "per-task", "--max-inputs-per-request", "5"],
                           env={"SOFTPROMPT_ADMIN_TOKEN": "from-env", "SOFTPROMPT_API_TOKEN": ""})
    assert r.exit_code == 0, r.output
    assert calls["model"] == ("tiny", "cpu", "auto")
    assert calls["host"] == "127.0.0.1"
    assert calls["port"] == 8123
    settings = calls["app"].state.settings
    assert (settings.max_batch_size, settings.batching, settings.admin_token, settings.api_token,
            settings.max_inputs_per_request) == (7, "per-task", "from-env", None, 5)
    assert len(calls["app"].state.registry) == 1
    assert "serving 1 prompt(s)" in r.output
    r = CliRunner().invoke(app, ["serve", "--prompts", str(tmp_path), "--batching", "sometimes"])
    assert failed(r, "batching")

"""Residual reparameterization and the lr schedule: the prompt file holds the prompt the model read,
the network trains, resume is bit-exact, and a run refuses to resume under other settings."""
import json

import pytest
import torch
from tiny import ToyTask, tiny_llama

from softprompt.core.config import ConfigError, PromptConfig, TrainConfig
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import read_prompt
from softprompt.core.reparameterization import ResidualReparameterization
from softprompt.core.scoring import mean_nll
from softprompt.errors import SoftPromptError
from softprompt.training.trainer import Trainer, lr_factor

RESIDUAL = {"reparameterization": "residual", "reparam_hidden": 8}


def _trainer(lm, run_dir, steps=12, on_step=None, **cfg):
    task = ToyTask()
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=4, init="sampled-vocab"), seed=0)
    config = TrainConfig(**{"batch_size": 4, "max_steps": steps, "eval_every": 4, "log_every": 2, "learning_rate": 0.05,
                            **cfg})
    return Trainer(lm, prompt, task, task.load("train"), task.load("dev"), config, run_dir,
                   show_progress=False, on_step=on_step)


def test_the_network_starts_as_the_identity_and_keeps_the_shape():
    weight = torch.randn(5, 16)
    prompt = SoftPrompt(weight, ResidualReparameterization(16, hidden=32, seed=0))
    assert prompt().shape == (5, 16)
    assert torch.equal(prompt.materialise(), weight)  # LN gain 0: the init is what the first update sees
    with torch.no_grad():
        prompt.reparameterization.norm.weight.fill_(1.0)
    moved = prompt.materialise() - weight
    # each row moves by its own normalised network output: zero mean, unit variance per row
    torch.testing.assert_close(moved.mean(-1), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(moved.var(-1, unbiased=False), torch.ones(5), atol=1e-3, rtol=0)


def test_the_same_seed_builds_the_same_network():
    a, b, c = (ResidualReparameterization(16, 4, seed=s) for s in (0, 0, 1))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.down.weight, c.down.weight)


def test_residual_training_saves_the_prompt_the_model_read(tmp_path):
    lm = tiny_llama()
    frozen = {k: v.clone() for k, v in lm.model.state_dict().items()}
    trainer = _trainer(lm, tmp_path, steps=8, **RESIDUAL)
    trainer.dev_examples = []  # no selection: the file holds the prompt after the last update
    start = trainer.prompt.weight.detach().clone()
    result = trainer.train()
    net = trainer.prompt.reparameterization
    assert net is not None and net.norm.weight.abs().max() > 0 and net.down.weight.grad is not None
    for k, v in lm.model.state_dict().items():
        assert torch.equal(v, frozen[k]), f"frozen weight {k} changed"
    saved = read_prompt(result.prompt_path).tensor
    effective = trainer.prompt.materialise()
    assert torch.equal(saved, effective) and not torch.equal(saved, trainer.prompt.weight.detach())
    assert not torch.equal(trainer.prompt.weight.detach(), start)
    # the saved prompt alone scores what the reparameterized one scored (the network is not needed after)
    task = ToyTask()
    rows = [lm.encode(ex.input, ex.target) for ex in task.load("dev")[:4]]
    with torch.no_grad():
        torch.testing.assert_close(mean_nll(lm, rows, saved, [list(range(4))]),
                                   mean_nll(lm, rows, trainer.prompt(), [list(range(4))]))
    assert json.loads((tmp_path / "result.json").read_text())["settings"]["train"]["reparameterization"] == "residual"


def test_the_network_matrices_take_relative_steps():
    trainer = _trainer(tiny_llama(), "/tmp/unused-run", **RESIDUAL)
    absolute, relative = trainer.optimizer.param_groups
    assert absolute["scale_parameter"] is False and absolute["lr"] == 0.05
    assert relative["scale_parameter"] is True and relative["lr"] == 0.01
    net = trainer.prompt.reparameterization
    assert [id(p) for p in absolute["params"]] == [id(trainer.prompt.weight), id(net.norm.weight), id(net.norm.bias)]
    assert [id(p) for p in relative["params"]] == [id(net.down.weight), id(net.up.weight)]
    adam = _trainer(tiny_llama(), "/tmp/unused-run", optimizer="adam", **RESIDUAL)
    rms = float(net.down.weight.detach().pow(2).mean().sqrt())
    assert adam.optimizer.param_groups[1]["lr"] == pytest.approx(0.01 * rms)


class Killed(Exception):
    pass


@pytest.mark.parametrize("settings", [RESIDUAL, {"lr_schedule": "linear"}, {**RESIDUAL, "optimizer": "adam"}])
def test_resume_after_kill_equals_uninterrupted_run(tmp_path, settings):
    full = _trainer(tiny_llama(), tmp_path / "full", **settings).train()

    def kill(step, loss):
        if step == 6:
            raise Killed

    with pytest.raises(Killed):
        _trainer(tiny_llama(), tmp_path / "killed", on_step=kill, **settings).train()
    resumed = _trainer(tiny_llama(), tmp_path / "killed", **settings).train(resume=True)
    assert torch.equal(read_prompt(resumed.prompt_path).tensor, read_prompt(full.prompt_path).tensor)
    last = torch.load(tmp_path / "killed" / "checkpoint.pt"), torch.load(tmp_path / "full" / "checkpoint.pt")
    assert torch.equal(last[0]["prompt"], last[1]["prompt"])
    if settings.get("reparameterization"):
        for name, tensor in last[1]["reparameterization"].items():
            assert torch.equal(last[0]["reparameterization"][name], tensor), name
    strip = lambda path: [{k: v for k, v in json.loads(x).items() if k not in ("elapsed", "seconds")}
                          for x in (path / "metrics.jsonl").read_text().splitlines()]
    assert strip(tmp_path / "killed") == strip(tmp_path / "full")


@pytest.mark.parametrize("first,then,field", [
    ({}, RESIDUAL, "reparameterization"),
    (RESIDUAL, {**RESIDUAL, "reparam_hidden": 16}, "reparam_hidden"),
    ({}, {"lr_schedule": "linear"}, "lr_schedule"),
    ({"lr_schedule": "linear"}, {"lr_schedule": "linear", "steps": 16}, "max_steps"),
])
def test_resume_refuses_other_settings(tmp_path, first, then, field):
    then = dict(then)
    steps = then.pop("steps", 8)
    _trainer(tiny_llama(), tmp_path, steps=8, **first).train()
    with pytest.raises(SoftPromptError, match=field):
        _trainer(tiny_llama(), tmp_path, steps=steps, **then).train(resume=True)


def test_a_constant_schedule_run_may_be_extended(tmp_path):
    _trainer(tiny_llama(), tmp_path, steps=4).train()
    assert _trainer(tiny_llama(), tmp_path, steps=8).train(resume=True).steps == 8


def test_linear_schedule_steps_down_to_one_step_before_zero(tmp_path):
    assert [lr_factor("linear", k, 4) for k in (1, 2, 3, 4)] == [1.0, 0.75, 0.5, 0.25]
    assert lr_factor("constant", 7, 4) == 1.0
    lrs: list[float] = []
    trainer = _trainer(tiny_llama(), tmp_path, steps=4, lr_schedule="linear", **RESIDUAL)
    trainer.on_step = lambda step, loss: lrs.append([g["lr"] for g in trainer.optimizer.param_groups])
    trainer.train()
    assert lrs == [[0.05 * f, 0.01 * f] for f in (1.0, 0.75, 0.5, 0.25)]


@pytest.mark.parametrize("kwargs,field", [({"lr_schedule": "cosine"}, "lr_schedule"),
                                          ({"reparameterization": "mlp"}, "reparameterization"),
                                          ({"reparam_hidden": 0}, "reparam_hidden"),
                                          ({"reparam_relative_lr": 0}, "reparam_relative_lr")])
def test_config_names_the_bad_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**kwargs)

"""Length bands: a training micro-batch computed in bands of similar length, one pass each, gives
the one padded pass's loss and gradient with fewer tokens computed."""
import itertools
import json
import random

import pytest
import torch
from tiny import LongShortTask, ToyTask, tiny_llama, tiny_t5

from softprompt import ResumeMismatch
from softprompt.core import batching
from softprompt.core.batching import length_bands
from softprompt.core.config import ConfigError, PromptConfig, TrainConfig
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import read_prompt
from softprompt.training.defaults import CPU_PROFILE, CUDA_PROFILE
from softprompt.training.trainer import Trainer


def _cost(lengths, bands, overhead):
    return sum(len(b) * max(lengths[i] for i in b) for b in bands) + overhead * (len(bands) - 1)


def _best_cost_by_enumeration(lengths, overhead):
    ordered = sorted(lengths)
    n = len(ordered)
    best = None
    for cuts in itertools.chain.from_iterable(itertools.combinations(range(1, n), k) for k in range(n)):
        edges = (0, *cuts, n)
        cost = sum((b - a) * ordered[b - 1] for a, b in zip(edges, edges[1:])) + overhead * len(cuts)
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("overhead", [0, 16, 32, 200])
def test_bands_cover_every_row_once_and_cost_the_fewest_tokens(seed, overhead):
    rng = random.Random(seed)
    lengths = [rng.randint(20, 260) for _ in range(rng.randint(1, 9))]
    bands = length_bands(lengths, overhead)
    assert sorted(i for band in bands for i in band) == list(range(len(lengths)))
    # bands are contiguous in length order: every row of a band is at most as long as the next band's
    for shorter, longer in zip(bands, bands[1:]):
        assert max(lengths[i] for i in shorter) <= min(lengths[i] for i in longer)
    assert _cost(lengths, bands, overhead) == _best_cost_by_enumeration(lengths, overhead)


def test_bands_cut_only_where_the_padding_saved_pays_for_a_pass():
    assert length_bands([100] * 8, 0) == [list(range(8))]  # nothing to save
    assert length_bands([40, 41, 250, 42], 32) == [[0, 1, 3], [2]]  # 3 x 208 tokens saved
    assert length_bands([40, 41, 50, 42], 32) == [[0, 1, 3, 2]]  # 3 x 8 saved < one pass
    assert length_bands([], 32) == []


def _train(lm, run_dir, bands, task=None, steps=6, **cfg):
    task = task or LongShortTask()
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=3, init="sampled-vocab"), seed=0)
    config = TrainConfig(batch_size=6, max_steps=steps, eval_every=3, log_every=1, optimizer="adam",
                         learning_rate=0.05, length_bands=bands, **cfg)
    return Trainer(lm, prompt, task, task.load("train"), task.load("dev"), config, run_dir, show_progress=False)


@pytest.mark.parametrize("objective", ["lm", "choices"])
@pytest.mark.parametrize("make", [tiny_llama, tiny_t5])
def test_a_banded_run_trains_the_prompt_a_padded_run_trains(make, objective, tmp_path, monkeypatch):
    passes = []
    real_bands = batching.length_bands

    def cheap_passes(lengths):  # the tiny rows are short: let every cut that saves a token count
        bands = real_bands(lengths, overhead_tokens=0)
        passes.append(len(bands))
        return bands

    monkeypatch.setattr(batching, "length_bands", cheap_passes)  # what the trainer and the choices loss cut with
    padded = _train(make(), tmp_path / "padded", bands=False, objective=objective)
    padded.train()
    assert passes == []  # off: one padded pass per micro-batch
    banded = _train(make(), tmp_path / "banded", bands=True, objective=objective)
    banded.train()
    assert len(passes) == 6 and max(passes) > 1
    moved = (padded.prompt.weight - banded.prompt.weight.detach()).abs().max().item()
    assert moved < 1e-4
    torch.testing.assert_close(banded.prompt.weight, padded.prompt.weight, atol=1e-5, rtol=1e-4)
    losses = {name: [r["loss"] for r in map(json.loads, (tmp_path / name / "metrics.jsonl").read_text().splitlines())
                     if r["event"] == "train"] for name in ("padded", "banded")}
    assert losses["banded"] == pytest.approx(losses["padded"], rel=1e-5)
    saved = json.loads((tmp_path / "banded" / "result.json").read_text())["settings"]["train"]
    assert saved["length_bands"] is True and saved["objective"] == objective


def test_a_banded_run_resumes_bit_exact_and_refuses_another_setting(tmp_path):
    class Killed(Exception):
        pass

    full = _train(tiny_llama(), tmp_path / "full", bands=True).train()

    def kill(step, loss):
        if step == 4:
            raise Killed

    killed = _train(tiny_llama(), tmp_path / "killed", bands=True)
    killed.on_step = kill
    with pytest.raises(Killed):
        killed.train()
    resumed = _train(tiny_llama(), tmp_path / "killed", bands=True).train(resume=True)
    assert torch.equal(read_prompt(resumed.prompt_path).tensor, read_prompt(full.prompt_path).tensor)
    with pytest.raises(ResumeMismatch, match="length_bands was True in the checkpoint, now False"):
        _train(tiny_llama(), tmp_path / "killed", bands=False, steps=9).train(resume=True)


def test_bands_default_to_on_for_a_cpu_and_off_on_cuda(tmp_path):
    assert CPU_PROFILE.length_bands and not CUDA_PROFILE.length_bands
    task = ToyTask()
    prompt = SoftPrompt.initialise(tiny_llama(), PromptConfig(length=3, init="sampled-vocab"), seed=0)
    lm = tiny_llama()
    trainer = Trainer(lm, prompt, task, task.load("train"), None,
                      TrainConfig(batch_size=4, max_steps=1, eval_every=1, learning_rate=0.01), tmp_path,
                      show_progress=False)
    assert trainer.config.length_bands is True
    assert trainer.settings["sources"]["length_bands"] == "cpu profile"
    with pytest.raises(ConfigError, match="length_bands"):
        TrainConfig(length_bands="yes")  # type: ignore[arg-type]

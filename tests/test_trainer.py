"""The trainer: frozen weights untouched, learning happens, resume equals an uninterrupted run."""
import json

import pytest
import torch
from tiny import ToyTask, tiny_llama, tiny_t5

from softprompt import ResumeMismatch
from softprompt.core.config import ConfigError, PromptConfig, TrainConfig
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import read_prompt
from softprompt.errors import SoftPromptError
from softprompt.training.trainer import Trainer


def _trainer(lm, run_dir, steps=12, on_step=None, **cfg):
    task = ToyTask()
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=4, init="sampled-vocab"), seed=0)
    config = TrainConfig(**{"batch_size": 4, "max_steps": steps, "eval_every": 4, "log_every": 2, **cfg})
    return Trainer(lm, prompt, task, task.load("train"), task.load("dev"), config, run_dir,
                   show_progress=False, on_step=on_step)


def _log(run_dir):
    """The run's metrics.jsonl without its timings, which differ between any two runs."""
    return [{k: v for k, v in json.loads(x).items() if k not in ("elapsed", "seconds")}
            for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("make", [tiny_llama, tiny_t5])
def test_training_changes_only_the_prompt_and_lowers_loss(make, tmp_path):
    lm = make()
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    trainer = _trainer(lm, tmp_path, steps=30, optimizer="adam", learning_rate=0.05)
    start = trainer.prompt.weight.detach().clone()
    result = trainer.train()
    for k, v in lm.model.state_dict().items():
        assert torch.equal(v, before[k]), f"frozen weight {k} changed"
    assert not torch.equal(trainer.prompt.weight.detach(), start)
    losses = [r["loss"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if r["event"] == "train"]
    assert losses[-1] < losses[0]
    saved = read_prompt(result.prompt_path)
    assert saved.metadata.task == "toy"
    assert saved.metadata.best_dev_metric["value"] == result.best_metric
    assert json.loads((tmp_path / "result.json").read_text())["steps"] == 30


def test_adafactor_default_is_the_papers_with_the_lr_rule():
    from transformers.optimization import Adafactor

    from softprompt.training.defaults import LR_PER_EMBEDDING_STD, embedding_std

    lm = tiny_llama()
    trainer = _trainer(lm, "/tmp/unused-run")
    opt = trainer.optimizer
    assert isinstance(opt, Adafactor)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(LR_PER_EMBEDDING_STD * embedding_std(lm), rel=1e-2)
    assert group["weight_decay"] == 1e-5
    assert group["decay_rate"] == -0.8
    assert group["scale_parameter"] is False
    assert group["relative_step"] is False
    assert group["beta1"] is None


class Killed(Exception):
    pass


@pytest.mark.parametrize("kill_at", [3, 5, 8])
def test_resume_after_kill_equals_uninterrupted_run(tmp_path, kill_at):
    full = _trainer(tiny_llama(), tmp_path / "full").train()
    full_prompt = read_prompt(full.prompt_path).tensor

    def kill(step, loss):
        if step == kill_at:
            raise Killed

    with pytest.raises(Killed):
        _trainer(tiny_llama(), tmp_path / "killed", on_step=kill).train()
    resumed = _trainer(tiny_llama(), tmp_path / "killed").train(resume=True)
    assert resumed.steps == full.steps
    assert torch.equal(read_prompt(resumed.prompt_path).tensor, full_prompt)
    assert resumed.best_step == full.best_step
    assert resumed.best_metric == full.best_metric
    assert _log(tmp_path / "killed") == _log(tmp_path / "full")


def test_a_finished_run_resumed_with_more_steps_is_the_longer_run(tmp_path):
    # the 8-update run ends with end-of-run verdicts (label prior, no gain) the 12-update run judges at 12
    longer = _trainer(tiny_llama(), tmp_path / "longer", steps=12).train()
    shorter = _trainer(tiny_llama(), tmp_path / "extended", steps=8).train()
    assert shorter.steps == 8 and any("--steps 32" in w for w in shorter.warnings)
    extended = _trainer(tiny_llama(), tmp_path / "extended", steps=12).train(resume=True)
    assert torch.equal(read_prompt(extended.prompt_path).tensor, read_prompt(longer.prompt_path).tensor)
    assert (extended.steps, extended.best_step, extended.best_metric) == (longer.steps, longer.best_step, longer.best_metric)
    assert extended.warnings == longer.warnings and any("--steps 48" in w for w in extended.warnings)
    assert _log(tmp_path / "extended") == _log(tmp_path / "longer")


def test_an_extended_run_judges_a_flat_loss_where_the_longer_run_does(tmp_path):
    # a flat loss is judged after a third of the run: at update 32 of 96, at update 40 of 120
    flat = lambda result: [w for w in result.warnings if "has not gone down" in w]
    longer = _trainer(tiny_llama(), tmp_path / "longer", steps=120, learning_rate=1e-9).train()
    shorter = _trainer(tiny_llama(), tmp_path / "extended", steps=96, learning_rate=1e-9).train()
    assert "in 32 updates" in flat(shorter)[0] and "in 40 updates" in flat(longer)[0]
    extended = _trainer(tiny_llama(), tmp_path / "extended", steps=120, learning_rate=1e-9).train(resume=True)
    assert extended.warnings == longer.warnings
    assert _log(tmp_path / "extended") == _log(tmp_path / "longer")


def test_a_run_that_stopped_early_refuses_more_steps(tmp_path):
    stopped = _trainer(tiny_llama(), tmp_path, steps=400, learning_rate=1e-9, early_stopping_patience=2).train()
    assert stopped.stopped_early
    with pytest.raises(SoftPromptError, match="stopped early at update 8"):
        _trainer(tiny_llama(), tmp_path, steps=800, learning_rate=1e-9, early_stopping_patience=2).train(resume=True)


def test_resume_refuses_changed_settings(tmp_path):
    _trainer(tiny_llama(), tmp_path, steps=4).train()
    with pytest.raises(SoftPromptError, match="batch_size"):
        trainer = _trainer(tiny_llama(), tmp_path, steps=8)
        trainer.config = TrainConfig(batch_size=2, max_steps=8, eval_every=4)
        trainer.train(resume=True)


def test_resume_refuses_a_changed_model_selection(tmp_path):
    # mid-run: the cadence and the dev rows are the run's; the refusal names the setting and the value
    # that restores it (the CLI's flag for it: test_cli)
    def kill(step, loss):
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        _trainer(tiny_llama(), tmp_path, intermediate_eval_examples=6, on_step=kill).train()
    for changed, saved in [({"eval_every": 2}, 4), ({"intermediate_eval_examples": 8}, 6),
                           ({"max_eval_examples": 10}, None), ({"early_stopping_patience": 1}, None)]:
        [(setting, now)] = changed.items()
        with pytest.raises(ResumeMismatch, match=rf"{setting} was {saved} in the checkpoint, now {now}") as refused:
            _trainer(tiny_llama(), tmp_path, **{"intermediate_eval_examples": 6, **changed}).train(resume=True)
        assert (refused.value.setting, refused.value.saved, refused.value.current) == (setting, saved, now)
    finished = _trainer(tiny_llama(), tmp_path, intermediate_eval_examples=6).train(resume=True)
    assert finished.steps == 12
    # past the planned end a new cadence is the user's choice; other dev rows still are not
    with pytest.raises(SoftPromptError, match="intermediate_eval_examples was 6"):
        _trainer(tiny_llama(), tmp_path, steps=16, intermediate_eval_examples=8).train(resume=True)
    extended = _trainer(tiny_llama(), tmp_path, steps=16, eval_every=8, intermediate_eval_examples=6).train(resume=True)
    evals = [r["step"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
             if r["event"] == "eval"]
    assert extended.steps == 16 and evals == [0, 4, 8, 12, 16]


def test_resume_without_checkpoint_is_clear(tmp_path):
    with pytest.raises(SoftPromptError, match="no checkpoint"):
        _trainer(tiny_llama(), tmp_path).train(resume=True)


def test_early_stopping(tmp_path):
    result = _trainer(tiny_llama(), tmp_path, steps=400, learning_rate=1e-9, early_stopping_patience=2).train()
    assert result.stopped_early
    assert result.steps == 8  # two evals (4, 8) without beating step 0


def test_gradient_accumulation_matches_big_batch(tmp_path, monkeypatch):
    # plain SGD: its step is proportional to the gradient, so a missing "/ grad_accum_steps" would
    # double the accumulated update (Adam and Adafactor normalise it away and could not tell)
    import softprompt.training.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "make_optimizer", lambda params, config: torch.optim.SGD(params, lr=0.5))
    big = _trainer(tiny_llama(), tmp_path / "a", steps=3, learning_rate=0.5)
    big.config = TrainConfig(batch_size=4, grad_accum_steps=1, max_steps=3, eval_every=10, learning_rate=0.5)
    small = _trainer(tiny_llama(), tmp_path / "b", steps=3, learning_rate=0.5)
    small.config = TrainConfig(batch_size=2, grad_accum_steps=2, max_steps=3, eval_every=10, learning_rate=0.5)
    start = small.prompt.weight.detach().clone()
    big.dev_examples = small.dev_examples = []
    big.train(), small.train()
    moved = (big.prompt.weight.detach() - start).abs().max().item()
    assert moved > 1e-3  # the updates are large enough for a factor of 2 to show
    # Same examples per update; token-mean per micro-batch makes this close, not bit-equal.
    torch.testing.assert_close(big.prompt.weight, small.prompt.weight, atol=0.05 * moved, rtol=0)


@pytest.mark.parametrize("kwargs,field", [({"batch_size": 0}, "batch_size"), ({"optimizer": "sgd"}, "optimizer"),
                                          ({"learning_rate": 0}, "learning_rate"), ({"early_stopping_patience": 0}, "early_stopping_patience")])
def test_train_config_validation(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**kwargs)


def test_activation_checkpointing_run_matches_plain_run(tmp_path):
    plain = _trainer(tiny_llama(), tmp_path / "plain", steps=4, optimizer="adam", learning_rate=0.01)
    plain.train()
    lm = tiny_llama()
    ckpt = _trainer(lm, tmp_path / "ckpt", steps=4, optimizer="adam", learning_rate=0.01, activation_checkpointing=1)
    ckpt.train()
    torch.testing.assert_close(ckpt.prompt.weight, plain.prompt.weight, atol=1e-5, rtol=1e-4)
    assert not any(getattr(m, "gradient_checkpointing", False) for m in lm.model.modules())  # switched off after


def test_a_run_whose_best_prompt_is_the_untrained_one_says_so(tmp_path):
    from tiny import ToyTask, tiny_llama

    from softprompt.core.config import PromptConfig, TrainConfig
    from softprompt.core.prompt import SoftPrompt
    from softprompt.training.trainer import Trainer

    lm, task = tiny_llama(), ToyTask()
    config = TrainConfig(learning_rate=1e-12, batch_size=4, max_steps=4, eval_every=2, eval_batch_size=4, seed=0)
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=2, init="class-label"), task.label_words, seed=0)
    result = Trainer(lm, prompt, task, task.load("train"), task.load("dev"), config, tmp_path / "run",
                     init_name="class-label", show_progress=False).train()
    assert result.best_step == 0
    assert any("best at update 0 of 4" in w for w in result.warnings or [])
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # an untrained prompt's loss is also no lower than the labels' entropy (said at the last update)
    assert [r["kind"] for r in logged if r["event"] == "warning"] == ["label_prior", "no_gain"]


def test_choice_loss_is_the_cross_entropy_of_the_ranked_options():
    from softprompt.core.scoring import choice_loss

    lm = tiny_llama()
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=3, init="sampled-vocab"), seed=1).weight
    inputs = ["great fun", "the plot is so"]
    options = [("positive", "negative"), ("really dull", "smart and funny", "bad")]  # 1- and 2-token options
    answers = [0, 2]
    rows = [[lm.encode(text, opt) for opt in opts] for text, opts in zip(inputs, options)]
    loss = choice_loss(lm, rows, answers, prompt)
    scores = lm.score_options(inputs, options, prompt.detach())  # evaluation's own (shared-prefix) scores
    expected = sum(torch.logsumexp(torch.tensor(s), 0) - s[a] for s, a in zip(scores, answers))
    assert loss.item() == pytest.approx(float(expected), abs=1e-4)
    loss.backward()
    assert prompt.grad is not None and prompt.grad.abs().sum() > 0


@pytest.mark.parametrize("in_bands", [False, True])
def test_one_token_options_are_read_from_one_row_per_example_as_full_rows_score_them(in_bands, monkeypatch):
    from softprompt.core import batching, scoring
    from softprompt.core.batching import build_batch, length_bands

    lm = tiny_llama()
    inputs = ["great fun", "the plot is so " * 12, "dull"]  # one long row: more than one band
    options = [("positive", "negative"), ("positive", "negative"), ("negative", "positive", "great")]
    answers = [0, 1, 2]
    rows = [[lm.encode(text, opt) for opt in opts] for text, opts in zip(inputs, options)]
    assert all(len(r.target_ids) == 1 for rs in rows for r in rs)
    cuts = []

    def every_cut(lengths):  # the tiny rows are short: let every cut that saves a token count
        cuts.append(length_bands(lengths, overhead_tokens=0))
        return cuts[-1]

    monkeypatch.setattr(batching, "length_bands", every_cut)

    def loss_and_grad(fn):
        prompt = SoftPrompt.initialise(lm, PromptConfig(length=3, init="sampled-vocab"), seed=1).weight
        loss = fn(prompt)
        loss.backward()
        return loss.detach(), prompt.grad

    fast, fast_grad = loss_and_grad(lambda w: scoring.choice_loss(lm, rows, answers, w, in_bands=in_bands))
    if in_bands:  # one row per example (3, not 7 option rows), cut into more than one band
        assert len(cuts) == 1 and sorted(i for band in cuts[0] for i in band) == [0, 1, 2] and len(cuts[0]) > 1
    else:
        assert cuts == []

    def full_rows(w):  # the reference: one full row per option, one padded pass
        flat = [r for rs in rows for r in rs]
        scores = scoring.sequence_log_probs(lm, build_batch(lm, flat, w))
        total, first = 0, 0
        for rs, answer in zip(rows, answers):
            own = scores[first:first + len(rs)]
            total, first = total + torch.logsumexp(own, 0) - own[answer], first + len(rs)
        return total

    reference, reference_grad = loss_and_grad(full_rows)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast_grad, reference_grad, atol=1e-5, rtol=1e-4)
    assert fast_grad.abs().sum() > 0


def test_choices_objective_trains_resumes_bit_exact_and_refuses_tasks_without_options(tmp_path):
    from softprompt.core.scoring import choice_loss

    def ranked_loss(weight):
        examples = ToyTask().load("train")
        rows = [[lm.encode(ex.input, o) for o in ex.choices] for ex in examples]
        with torch.no_grad():
            return choice_loss(lm, rows, [ex.choices.index(ex.target) for ex in examples], weight).item()

    lm = tiny_llama()
    full = _trainer(lm, tmp_path / "full", steps=12, objective="choices", optimizer="adam", learning_rate=0.05)
    start = full.prompt.weight.detach().clone()
    result = full.train()
    assert ranked_loss(full.prompt.weight.detach()) < ranked_loss(start)
    assert json.loads((tmp_path / "full" / "result.json").read_text())["settings"]["train"]["objective"] == "choices"

    def kill(step, loss):
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        _trainer(tiny_llama(), tmp_path / "killed", on_step=kill, objective="choices", optimizer="adam",
                 learning_rate=0.05).train()
    resumed = _trainer(tiny_llama(), tmp_path / "killed", objective="choices", optimizer="adam",
                       learning_rate=0.05).train(resume=True)
    assert torch.equal(read_prompt(resumed.prompt_path).tensor, read_prompt(result.prompt_path).tensor)
    with pytest.raises(SoftPromptError, match="objective was 'choices'"):
        _trainer(tiny_llama(), tmp_path / "killed", steps=16, optimizer="adam", learning_rate=0.05).train(resume=True)

    from softprompt.tasks.base import Example
    task = ToyTask()
    prompt = SoftPrompt.initialise(lm, PromptConfig(length=2, init="sampled-vocab"))
    config = TrainConfig(batch_size=2, max_steps=1, eval_every=1, learning_rate=0.01, objective="choices")
    with pytest.raises(SoftPromptError, match="no options"):
        Trainer(lm, prompt, task, [Example("a question", "an answer")], None, config, tmp_path / "gen")
    with pytest.raises(SoftPromptError, match="not one of its options"):
        Trainer(lm, prompt, task, [Example("great fun", "good", ("positive", "negative"))], None, config, tmp_path / "bad")
    with pytest.raises(ConfigError, match="objective"):
        TrainConfig(objective="contrastive")  # type: ignore[arg-type]

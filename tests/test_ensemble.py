"""Prompt ensembles: one batched pass per chunk scores N prompts exactly as N separate passes."""
import math

import pytest
import torch
from tiny import ToyTask, tiny_llama, tiny_t5

from softprompt.core.config import PromptConfig
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import metadata_for, save_prompt
from softprompt.errors import SoftPromptError
from softprompt.evaluation.ensemble import (
    batched_prompt_scores,
    combine_predictions,
    evaluate_ensemble,
    evaluate_ensemble_files,
)
from softprompt.evaluation.evaluator import evaluate
from softprompt.tasks.base import Example

torch.set_num_threads(1)


def _prompts(lm, lengths=(3, 5, 4)):
    return [SoftPrompt.initialise(lm, PromptConfig(length=n, init="sampled-vocab"), seed=i).weight.detach()
            for i, n in enumerate(lengths)]


MULTI = [  # per-example options of several tokens (COPA-like)
    Example("the movie was", "great fun", ("great fun", "very bad plot")),
    Example("the plot is so", "dull", ("really dull", "smart and funny")),
    Example("it was a", "good film", ("good film", "bad")),
]


@pytest.mark.parametrize("make", [tiny_llama, tiny_t5])
@pytest.mark.parametrize("kind", ["single", "multi"])
def test_batched_scores_equal_scoring_each_prompt_separately(make, kind):
    lm = make()
    examples = ToyTask().load("dev")[:5] if kind == "single" else MULTI
    prompts = _prompts(lm)
    batched = batched_prompt_scores(lm, examples, prompts, batch_size=2)
    for k, p in enumerate(prompts):
        alone = lm.score_options([e.input for e in examples], [e.options for e in examples], p)
        torch.testing.assert_close(torch.tensor(batched[k]), torch.tensor(alone), atol=1e-4, rtol=1e-4)
    unshared = batched_prompt_scores(lm, examples, prompts, batch_size=2, share_prefix=False)
    torch.testing.assert_close(torch.tensor(batched), torch.tensor(unshared), atol=1e-4, rtol=1e-4)


def test_one_score_options_call_per_chunk_holds_every_prompt(monkeypatch):
    lm = tiny_llama()
    calls = []
    original = lm.score_options

    def spy(inputs, options, prompts=None, share_prefix=True, max_input_tokens=None):
        calls.append((len(inputs), prompts, max_input_tokens))
        return original(inputs, options, prompts, share_prefix, max_input_tokens)

    monkeypatch.setattr(lm, "score_options", spy)
    examples = ToyTask().load("dev")[:10]  # 10 examples: the last chunk is short
    prompts = _prompts(lm)
    batched_prompt_scores(lm, examples, prompts, batch_size=4, max_input_tokens=[5, 6, 7])
    assert [call[0] for call in calls] == [12, 12, 6]  # ceil(10 / 4) chunks, each example once per prompt
    rows = calls[0][1]
    assert rows[0] is prompts[0]
    assert rows[4] is prompts[1]
    assert rows[8] is prompts[2]
    # each row is cut as its own prompt was trained
    assert calls[0][2] == [5] * 4 + [6] * 4 + [7] * 4
    assert calls[2][2] == [5, 5, 6, 6, 7, 7]


def test_majority_vote_with_ties_broken_by_summed_log_likelihood():
    ex = Example("x", "b", ("a", "b", "c"))
    # votes: a, b, b -> b
    scores = [[[0.0, -1.0, -2.0]], [[-5.0, -0.1, -3.0]], [[-5.0, -0.2, -3.0]]]
    assert combine_predictions([ex], scores) == ["b"]
    # votes: a, b, c -> 3-way tie; summed: a -1-9-9=-19, b -2-1-9=-12, c -3-3-1=-7 -> c
    scores = [[[-1.0, -2.0, -3.0]], [[-9.0, -1.0, -3.0]], [[-9.0, -9.0, -1.0]]]
    assert combine_predictions([ex], scores) == ["c"]
    # two prompts disagree: tie between a and b; summed a=-1-3=-4, b=-2-1=-3 -> b
    scores = [[[-1.0, -2.0, -9.0]], [[-3.0, -1.0, -9.0]]]
    assert combine_predictions([ex], scores) == ["b"]
    assert combine_predictions([ex], scores, "sum") == ["b"]
    with pytest.raises(SoftPromptError):
        combine_predictions([ex], scores, "median")


def test_evaluate_ensemble_reports_average_best_and_ensemble():
    lm = tiny_llama()
    task = ToyTask()
    examples = task.load("dev")
    prompts = _prompts(lm)
    res = evaluate_ensemble(lm, task, examples, prompts, batch_size=3)
    for k, p in enumerate(prompts):
        alone = evaluate(lm, task, examples, p)
        assert res.per_prompt[k] == alone.metrics
        assert res.prompt_predictions[k] == alone.predictions
    accs = [m["accuracy"] for m in res.per_prompt]
    assert math.isclose(res.average["accuracy"], sum(accs) / 3)
    assert res.best["accuracy"] == max(accs)
    assert res.best_index == accs.index(max(accs))
    assert res.ensemble == task.compute_metrics(res.predictions, examples)
    d = res.to_dict()
    assert d["examples"] == len(examples) == 12
    assert len(d["per_prompt"]) == 3
    assert d["combine"] == "vote"


def test_compare_separate_times_one_pass_per_prompt_with_the_same_scores():
    lm = tiny_llama()
    task = ToyTask()
    prompts = _prompts(lm)
    res = evaluate_ensemble(lm, task, task.load("dev"), prompts, batch_size=3, compare_separate=True)
    assert res.separate_seconds > 0
    assert res.separate_max_diff < 1e-4  # each prompt alone scores as it does in the shared batch
    assert res.to_dict()["separate_seconds"] == round(res.separate_seconds, 3)
    assert evaluate_ensemble(lm, task, task.load("dev"), prompts, batch_size=3).separate_seconds is None


def test_identical_prompts_ensemble_equals_the_single_prompt():
    lm = tiny_llama()
    task = ToyTask()
    p = _prompts(lm, (4,))[0]
    res = evaluate_ensemble(lm, task, task.load("dev"), [p, p, p])
    assert res.ensemble == res.per_prompt[0] == res.average


def test_ensemble_from_prompt_files(tmp_path):
    lm = tiny_llama()
    task = ToyTask()
    paths = []
    for k, p in enumerate(_prompts(lm, (2, 3))):
        settings = {"max_steps": 30, "step": 10 * (k + 1), "seed": k, "learning_rate": 0.1} if k else {}
        paths.append(str(save_prompt(tmp_path / f"p{k}.safetensors", p,
                                     metadata_for(lm, p, task="toy", init="sampled-vocab", train_settings=settings))))
    task.load = lambda split, _load=task.load: _load(split)  # any split name
    res = evaluate_ensemble_files(lm, task, paths, max_examples=6, batch_size=4)
    assert len(res.predictions) == 6
    assert res.names == paths
    # each prompt's training as its file records it (nothing recorded: None), kept in the JSON record
    assert res.trained == [
        {"length": 2, "init": "sampled-vocab", "updates": None, "kept_at_update": None, "seed": None, "learning_rate": None},
        {"length": 3, "init": "sampled-vocab", "updates": 30, "kept_at_update": 20, "seed": 1, "learning_rate": 0.1}]
    assert res.to_dict()["trained"] == res.trained


def test_generation_examples_are_refused():
    lm = tiny_llama()
    with pytest.raises(SoftPromptError, match="classification"):
        batched_prompt_scores(lm, [Example("q", "a")], _prompts(lm, (2,)))
    with pytest.raises(SoftPromptError, match="at least one"):
        batched_prompt_scores(lm, ToyTask().load("dev"), [])


def test_one_input_limit_per_prompt_or_a_clear_error():
    lm = tiny_llama()
    examples = ToyTask().load("dev")[:2]
    prompts = _prompts(lm, (3, 5))
    cut = batched_prompt_scores(lm, examples, prompts, max_input_tokens=[1, None])
    alone = [batched_prompt_scores(lm, examples, [p])[0] for p in prompts]
    assert torch.allclose(torch.tensor(cut[1]), torch.tensor(alone[1]), atol=1e-5)
    assert not torch.allclose(torch.tensor(cut[0]), torch.tensor(alone[0]), atol=1e-3)  # inputs cut to 1 token
    with pytest.raises(SoftPromptError, match="3 input limits for 2 prompts") as err:
        batched_prompt_scores(lm, examples, prompts, max_input_tokens=[4, 4, 4])
    assert isinstance(err.value, ValueError)
    with pytest.raises(ValueError, match="1 input limits for 2 rows"):
        lm.score_options(["good film", "bad"], [["a"], ["b"]], max_input_tokens=[3])

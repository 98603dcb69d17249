"""The real packaged SmolLM2-135M on real SST-2 rows (marked real_model; runs in CI)."""
import pytest
import torch

import softprompt as sp
from softprompt.core.prompt import SoftPrompt
from softprompt.evaluation.evaluator import evaluate
from softprompt.evaluation.neighbours import nearest_tokens
from softprompt.training.trainer import Trainer

pytestmark = pytest.mark.real_model


def test_smollm2_is_frozen_causal_lm_with_real_tokenizer(smollm2):
    assert not smollm2.is_encoder_decoder
    assert smollm2.hidden_size == 576
    assert all(not p.requires_grad for p in smollm2.model.parameters())
    assert smollm2.tokenizer(" positive", add_special_tokens=False).input_ids == [2731]


def test_prompt_tuning_a_few_steps_on_real_sst2(smollm2, data_dir, tmp_path):
    task = sp.get_task("sst2", data_dir)
    train, dev = task.load("train")[:32], task.load("dev")[:16]
    weights_before = smollm2.model.model.layers[0].mlp.up_proj.weight.clone()
    prompt = SoftPrompt.initialise(smollm2, sp.PromptConfig(length=8, init="class-label"), task.label_words)
    config = sp.TrainConfig(batch_size=4, max_steps=4, eval_every=4, learning_rate=0.01, max_input_tokens=64)
    start = prompt.weight.detach().clone()
    result = Trainer(smollm2, prompt, task, train, dev, config, tmp_path, show_progress=False).train()
    assert result.steps == 4
    assert result.initial_metrics is not None
    # the saved (best) prompt reproduces the recorded best score on the same dev rows
    rescored = evaluate(smollm2, task, dev, sp.load_prompt(result.prompt_path, smollm2).tensor,
                           max_input_tokens=64)
    assert rescored.metrics["accuracy"] == pytest.approx(result.best_metrics["accuracy"])
    assert not torch.equal(prompt.weight.detach(), start)
    assert torch.equal(smollm2.model.model.layers[0].mlp.up_proj.weight, weights_before)
    saved = sp.load_prompt(result.prompt_path, smollm2)
    assert saved.metadata.model_id == "smollm2"
    assert saved.metadata.label_words == ["negative", "positive"]


def test_a_residual_prompt_on_real_sst2_is_served_as_the_prompt_it_trained(smollm2, data_dir, tmp_path):
    task = sp.get_task("sst2", data_dir)
    train, dev = task.load("train")[:32], task.load("dev")[:16]
    prompt = SoftPrompt.initialise(smollm2, sp.PromptConfig(length=8, init="class-label"), task.label_words)
    config = sp.TrainConfig(batch_size=4, max_steps=4, eval_every=4, learning_rate=0.01, max_input_tokens=64,
                            reparameterization="residual", lr_schedule="linear")
    result = Trainer(smollm2, prompt, task, train, [], config, tmp_path, show_progress=False).train()
    saved = sp.load_prompt(result.prompt_path, smollm2).tensor
    # the file holds the prompt the model read (P through the network), not the raw P
    assert torch.equal(saved, prompt.materialise()) and not torch.equal(saved, prompt.weight.detach())
    assert prompt.reparameterization.norm.weight.abs().max() > 0
    # scored without the network, it gives the network's scores
    with torch.no_grad():
        direct = evaluate(smollm2, task, dev, prompt(), max_input_tokens=64)
    assert evaluate(smollm2, task, dev, saved, max_input_tokens=64).scores == direct.scores


def test_class_label_rows_are_nearest_to_their_label_words(smollm2):
    prompt = sp.SoftPrompt.initialise(smollm2, sp.PromptConfig(length=4, init="class-label"), ("negative", "positive"))
    neighbours = nearest_tokens(smollm2, prompt.weight.detach(), k=1)
    assert neighbours[0][0][0].strip() == "negative"
    assert neighbours[1][0][0].strip() == "positive"
    assert neighbours[0][0][1] > 0.99


def test_generation_and_rank_classification_run(smollm2):
    out = smollm2.generate(["The capital of France is"], None, max_new_tokens=3)
    assert "Paris" in out[0]
    scores = smollm2.score_options(["I loved this movie, it was wonderful. Sentiment:"], [("positive", "negative")])
    assert scores[0][0] > scores[0][1]


@pytest.fixture(scope="module")
def gemma3():
    from softprompt.core.loading import load_model

    return load_model("gemma3-270m", max_input_tokens=64)


def test_gemma3_scaled_embeddings_targets_only_loss_and_training(gemma3, data_dir, tmp_path):
    lm = gemma3
    assert lm.vocab_size == 262144
    assert lm.tokenizer.bos_token_id is not None
    # Prompt rows live in the scaled space: a class-label row is its label's scaled embedding.
    prompt = SoftPrompt.initialise(lm, sp.PromptConfig(length=4, init="class-label"), ("negative", "positive"))
    assert nearest_tokens(lm, prompt.weight.detach()[:2], k=1)[1][0][0].strip() == "positive"
    # The LM head at target positions gives the model's own full-sequence loss.
    task = sp.get_task("sst2", data_dir)
    rows = [lm.encode(ex.input, ex.target) for ex in task.load("dev")[:3]]
    batch = lm.build_batch(rows, prompt.weight.detach(), padding_side="right")
    labels = torch.full(batch.attention_mask.shape, -100)
    for k, (r, pos) in enumerate(zip(batch.target_rows.tolist(), batch.target_positions.tolist())):
        labels[r, pos + 1] = batch.target_ids[k]
    with torch.no_grad():
        full = lm.model(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                        position_ids=batch.position_ids, labels=labels).loss
        torch.testing.assert_close(lm.loss(batch), full, atol=1e-4, rtol=1e-4)
    config = sp.TrainConfig(batch_size=2, max_steps=2, eval_every=2, learning_rate=0.01, max_input_tokens=64)
    result = Trainer(lm, prompt, task, task.load("train")[:8], task.load("dev")[:4], config, tmp_path,
                     show_progress=False).train()
    assert result.steps == 2
    assert sp.load_prompt(result.prompt_path, lm).metadata.model_id == "gemma3-270m"


@pytest.mark.parametrize("model", ["smollm2", "gemma3"])
def test_natural_label_words_start_with_distinct_tokens_on_the_shipped_models(model, request, data_dir):
    """Rank classification compares the label words' log-likelihoods; in the natural formats each
    class's word must begin with its own token after the answer cue, on both shipped tokenizers."""
    lm = request.getfixturevalue(model)
    for name in sp.task_names():
        task = sp.get_task(name, data_dir, format="natural")
        if not task.label_words:
            continue
        example = task.load("dev")[0] if "dev" in task.available_splits() else None
        cue = example.input if example is not None else "Answer:"
        first = [lm.encode(cue, word).target_ids[0] for word in task.label_words]
        assert len(set(first)) == len(first), f"{name} on {model}: {task.label_words}"

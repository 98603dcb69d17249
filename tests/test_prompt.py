"""Initialisations do what they say."""
import math

import pytest
import torch
from tiny import tiny_gemma3, tiny_llama

from softprompt.core.config import ConfigError, PromptConfig
from softprompt.core.prompt import SoftPrompt, initial_prompt, label_token_ids
from softprompt.core.prompt_file import metadata_for, save_prompt


def test_random_uniform_literal_range():
    lm = tiny_llama()
    p = initial_prompt(lm, PromptConfig(length=50, init="random-uniform", init_range=0.5))
    assert p.shape == (50, lm.hidden_size)
    assert p.min() >= -0.5
    assert p.max() <= 0.5
    assert p.min() < -0.45
    assert p.max() > 0.45  # actually spans the range


def test_random_uniform_auto_range_matches_vocab_spread():
    lm = tiny_gemma3()  # scaled embeddings: a much larger spread than the raw weights
    p = initial_prompt(lm, PromptConfig(length=200, init="random-uniform"))
    vocab = lm.embed(torch.tensor(lm.common_token_ids(5000)))
    r = math.sqrt(3) * vocab.std().item()
    assert p.abs().max() <= r + 1e-6
    assert abs(p.std().item() - vocab.std().item()) / vocab.std().item() < 0.1


def test_sampled_vocab_rows_are_distinct_common_token_embeddings():
    lm = tiny_llama()
    p = initial_prompt(lm, PromptConfig(length=10, init="sampled-vocab", vocab_sample_size=30))
    pool = lm.embed(torch.tensor(lm.common_token_ids(30)))
    matches = [int((pool == row).all(dim=1).nonzero()[0]) for row in p]
    assert len(set(matches)) == 10
    special = set(lm.tokenizer.all_special_ids)
    assert not special & set(lm.common_token_ids(30))


def test_class_label_rows_average_label_tokens_and_fall_back_to_vocab():
    lm = tiny_llama()
    labels = ("positive", "not_entailment")
    p = initial_prompt(lm, PromptConfig(length=6, init="class-label", vocab_sample_size=40), labels, seed=3)
    for i, word in enumerate(labels):
        expect = lm.embed(torch.tensor(label_token_ids(lm, word))).mean(0)
        torch.testing.assert_close(p[i], expect)
    pool = lm.embed(torch.tensor(lm.common_token_ids(40)))
    for row in p[2:]:
        assert (pool == row).all(dim=1).any()


def test_class_label_averages_multi_token_labels():
    lm = tiny_llama()
    # "good fun" is two tokens in the tiny vocabulary: its row is their mean.
    p = initial_prompt(lm, PromptConfig(length=2, init="class-label"), ("good fun", "bad"))
    ids = label_token_ids(lm, "good fun")
    assert len(ids) == 2
    torch.testing.assert_close(p[0], lm.embed(torch.tensor(ids)).mean(0))


def test_class_label_without_labels_is_a_clear_error():
    with pytest.raises(ConfigError, match="label words"):
        initial_prompt(tiny_llama(), PromptConfig(length=4, init="class-label"), None)


def test_text_init_repeats_to_fill():
    lm = tiny_llama()
    p = initial_prompt(lm, PromptConfig(length=5, init="text", init_text="great movie"))
    ids = lm.tokenizer("great movie", add_special_tokens=False).input_ids
    emb = lm.embed(torch.tensor(ids))
    torch.testing.assert_close(p, torch.stack([emb[0], emb[1], emb[0], emb[1], emb[0]]))


def test_file_init_round_trips_and_checks_length(tmp_path):
    lm = tiny_llama()
    weights = torch.randn(4, lm.hidden_size)
    path = save_prompt(tmp_path / "p.safetensors", weights, metadata_for(lm, weights))
    torch.testing.assert_close(initial_prompt(lm, PromptConfig(length=4, init="file", init_file=str(path))), weights)
    with pytest.raises(ConfigError, match="length"):
        initial_prompt(lm, PromptConfig(length=5, init="file", init_file=str(path)))


def test_seeded_inits_are_reproducible():
    lm = tiny_llama()
    cfg = PromptConfig(length=8, init="sampled-vocab")
    torch.testing.assert_close(initial_prompt(lm, cfg, seed=1), initial_prompt(lm, cfg, seed=1))
    assert not torch.equal(initial_prompt(lm, cfg, seed=1), initial_prompt(lm, cfg, seed=2))


@pytest.mark.parametrize("kwargs,field", [
    ({"length": 0}, "length"), ({"init": "zeros"}, "init"), ({"init": "text"}, "init_text"),
    ({"init": "file"}, "init_file"), ({"init_range": -1.0}, "init_range"),
])
def test_prompt_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        PromptConfig(**kwargs)


def test_soft_prompt_is_float32_parameter():
    sp = SoftPrompt(torch.randn(3, 8, dtype=torch.bfloat16))
    assert sp.weight.dtype == torch.float32
    assert sp.weight.requires_grad
    assert sp.length == 3

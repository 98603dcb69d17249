"""The adapter: prompt placement, masks, padding invariance, LM-head-at-targets loss."""
import pytest
import torch
from tiny import MAKERS, tiny_gemma3, tiny_llama, tiny_t5

from softprompt.core.model import EncodedRow

TEXTS = [("the movie was great fun", "positive"), ("bad", "negative"), ("a really long boring story of the plot", "negative")]


@pytest.fixture(params=list(MAKERS))
def lm(request):
    return MAKERS[request.param]()


def _rows(lm):
    return [lm.encode(t, y) for t, y in TEXTS]


def test_weights_frozen_and_only_prompt_gets_gradients(lm):
    prompt = torch.nn.Parameter(torch.randn(4, lm.hidden_size))
    loss = lm.loss(lm.build_batch(_rows(lm), prompt))
    loss.backward()
    assert prompt.grad is not None
    assert prompt.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in lm.model.parameters())


@pytest.mark.parametrize("side", ["left", "right"])
def test_scores_do_not_depend_on_padding(lm, side):
    prompt = torch.randn(4, lm.hidden_size)
    rows = _rows(lm)
    together = lm.sequence_log_probs(lm.build_batch(rows, prompt, padding_side=side))
    alone = torch.stack([lm.sequence_log_probs(lm.build_batch([r], prompt, padding_side=side))[0] for r in rows])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)
    # Extra padding: add a much longer row; the original rows' scores must not move.
    long_row = lm.encode(" ".join(["the"] * 40), "positive")
    padded = lm.sequence_log_probs(lm.build_batch(rows + [long_row], prompt, padding_side=side))[:3]
    torch.testing.assert_close(padded, alone, atol=1e-4, rtol=1e-4)


def test_left_and_right_padding_agree(lm):
    prompt = torch.randn(3, lm.hidden_size)
    left = lm.sequence_log_probs(lm.build_batch(_rows(lm), prompt, padding_side="left"))
    right = lm.sequence_log_probs(lm.build_batch(_rows(lm), prompt, padding_side="right"))
    torch.testing.assert_close(left, right, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("side", ["left", "right"])
def test_prompt_placement_and_mask(side):
    lm = tiny_llama(bos=True)
    prompt = torch.full((3, lm.hidden_size), 7.0)
    rows = [lm.encode("the movie", "positive"), lm.encode("bad", "negative")]
    batch = lm.build_batch(rows, prompt, padding_side=side)
    short = 1  # second row is one token shorter
    embeds, mask = batch.inputs_embeds[1], batch.attention_mask[1]
    start = short if side == "left" else 0
    assert mask.tolist() == ([0] * short + [1] * 6 if side == "left" else [1] * 6 + [0] * short)
    bos = lm.embed(torch.tensor([lm.tokenizer.bos_token_id]))[0]
    torch.testing.assert_close(embeds[start], bos)  # BOS first, then the prompt, then text
    assert torch.all(embeds[start + 1:start + 4] == 7.0)
    torch.testing.assert_close(embeds[start + 4], lm.embed(torch.tensor([rows[1].input_ids[0]]))[0])
    assert batch.position_ids[1, start:start + 6].tolist() == list(range(6))


def test_rows_carry_their_own_prompts():
    lm = tiny_llama()
    p_short, p_long = torch.randn(2, lm.hidden_size), torch.randn(6, lm.hidden_size)
    rows = _rows(lm)
    mixed = lm.sequence_log_probs(lm.build_batch(rows, [p_short, None, p_long]))
    expect = torch.stack([
        lm.sequence_log_probs(lm.build_batch([rows[0]], p_short))[0],
        lm.sequence_log_probs(lm.build_batch([rows[1]], None))[0],
        lm.sequence_log_probs(lm.build_batch([rows[2]], p_long))[0],
    ])
    torch.testing.assert_close(mixed, expect, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("make", [tiny_llama, tiny_gemma3])
def test_lm_head_at_targets_equals_full_sequence_loss(make):
    lm = make()
    prompt = torch.randn(4, lm.hidden_size)
    rows = _rows(lm)
    batch = lm.build_batch(rows, prompt, padding_side="right")
    ours = lm.loss(batch)
    # Reference: the model's own forward over the whole sequence, labels masked to targets.
    labels = torch.full(batch.attention_mask.shape, -100)
    for k, (r, pos) in enumerate(zip(batch.target_rows.tolist(), batch.target_positions.tolist())):
        labels[r, pos + 1] = batch.target_ids[k]
    full = lm.model(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                    position_ids=batch.position_ids, labels=labels)
    torch.testing.assert_close(ours, full.loss, atol=1e-5, rtol=1e-5)


def test_encoder_decoder_loss_matches_model_labels():
    lm = tiny_t5()
    prompt = torch.randn(4, lm.hidden_size)
    batch = lm.build_batch(_rows(lm), prompt, padding_side="right")
    labels = torch.full(batch.decoder_input_ids.shape, -100)
    labels[batch.target_rows, batch.target_positions] = batch.target_ids
    full = lm.model(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask, labels=labels)
    torch.testing.assert_close(lm.loss(batch), full.loss, atol=1e-5, rtol=1e-5)


def test_gemma_prompt_lives_in_scaled_embedding_space():
    lm = tiny_gemma3()
    ids = torch.tensor([5, 6])
    raw = lm.input_embeddings.weight[ids]
    torch.testing.assert_close(lm.embed(ids), raw * (lm.hidden_size ** 0.5), atol=1e-3, rtol=1e-3)


def test_single_token_fast_path_equals_general_scoring():
    lm = tiny_llama()
    prompt = torch.randn(4, lm.hidden_size)
    inputs = ["the movie was great", "bad plot"]
    fast = lm.score_options(inputs, [("positive", "negative")] * 2, prompt)
    general = [[lm.sequence_log_probs(lm.build_batch([lm.encode(x, o)], prompt))[0].item() for o in ("positive", "negative")] for x in inputs]
    torch.testing.assert_close(torch.tensor(fast), torch.tensor(general), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("make", [tiny_llama, tiny_gemma3])
def test_cached_greedy_generation_equals_uncached_argmax(make):
    lm = make()
    prompt = torch.randn(3, lm.hidden_size)
    inputs = ["the movie was", "bad"]
    got = lm.generate(inputs, prompt, max_new_tokens=5)
    for text, out in zip(inputs, got):
        row = lm.encode(text)
        ids: list[int] = []
        for _ in range(5):
            batch = lm.build_batch([EncodedRow(row.prefix_ids, row.input_ids + tuple(ids))], prompt)
            logits = lm.model(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                              position_ids=batch.position_ids).logits[0, -1]
            nxt = int(logits.argmax())
            if nxt == lm.eos_id:
                break
            ids.append(nxt)
        assert out == lm.tokenizer.decode(ids, skip_special_tokens=True).strip()


def test_fingerprint_identifies_model():
    assert tiny_llama(seed=0).fingerprint() == tiny_llama(seed=0).fingerprint()
    assert tiny_llama(seed=0).fingerprint() != tiny_llama(seed=1).fingerprint()


def test_long_inputs_keep_their_end():
    lm = tiny_llama()
    lm.max_input_tokens = 4
    row = lm.encode("a b c the movie was great", "positive")
    assert lm.tokenizer.decode(row.input_ids) == "the movie was great"
    assert row.prefix_ids == (lm.tokenizer.bos_token_id,)


@pytest.mark.parametrize("make", [tiny_llama, tiny_gemma3, tiny_t5])
def test_shared_prefix_scoring_equals_one_row_per_option(make):
    lm = make()
    inputs = ["the movie was great", "bad plot and really long boring story"]
    options = [("positive", "not_entailment", "good fun really"), ("negative", "great actors")]
    per_row = [torch.randn(3, lm.hidden_size), torch.randn(5, lm.hidden_size)]
    shared = lm.score_options(inputs, options, per_row)
    naive = lm.score_options(inputs, options, per_row, share_prefix=False)
    for a, b in zip(shared, naive):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("every", [1, 2])
@pytest.mark.parametrize("make", [tiny_llama, tiny_gemma3, tiny_t5])
def test_activation_checkpointing_gives_the_same_loss_and_gradient(make, every):
    lm = make()
    rows = _rows(lm)
    prompt = torch.nn.Parameter(torch.randn(4, lm.hidden_size))
    lm.loss(lm.build_batch(rows, prompt)).backward()
    plain = prompt.grad.clone()
    prompt.grad = None
    lm.set_activation_checkpointing(every)
    try:
        from transformers.modeling_layers import GradientCheckpointingLayer
        flags = [m.gradient_checkpointing for m in lm.model.modules() if isinstance(m, GradientCheckpointingLayer)]
        assert sum(flags) == (len(flags) + every - 1) // every
        lm.loss(lm.build_batch(rows, prompt)).backward()
    finally:
        lm.set_activation_checkpointing(0)
    torch.testing.assert_close(prompt.grad, plain, atol=1e-5, rtol=1e-4)
    assert not any(m.training for m in lm.model.modules())


def test_needs_conversion_names_the_folder_loading_converts_into(tmp_path, monkeypatch):
    from softprompt.core import loading

    monkeypatch.setenv("SOFTPROMPT_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"")
    monkeypatch.setitem(loading.BUILTIN_MODELS, "smollm2", loading.BuiltinModel("smollm2", "hub/id", lambda: gguf))
    converted_into = []

    def fake_convert(gguf_file, out_dir):
        converted_into.append(out_dir)
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")
        return out_dir

    monkeypatch.setattr(loading, "convert_gguf", fake_convert)
    for name in ("smollm2", str(gguf)):
        assert loading.needs_conversion(name)
        loading._resolve_source(name)
        assert not loading.needs_conversion(name)  # converted once; later loads read the folder
    assert len(converted_into) == 2
    assert not loading.needs_conversion(str(tmp_path))  # a model folder or hub id is never converted
    assert not loading.needs_conversion("HuggingFaceTB/SmolLM2-135M")


def test_a_converted_folder_loads_as_plain_weights_even_with_a_leftover_gguf_entry(tmp_path, caplog):
    """Folders converted before the fix kept the GGUF `quantization_config`; transformers then
    treated the float32 weights as packed GGUF and, in bfloat16, warned about float32 kernels."""
    import json

    from softprompt.core import loading

    lm = tiny_llama()
    folder = tmp_path / "converted"
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gguf", "dequantize": False, "gguf_file": "tiny.gguf"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / loading.CONVERSION_MARKER).write_text(json.dumps({"gguf": "tiny.gguf"}))

    with caplog.at_level("WARNING"):
        loaded = loading.load_model(str(folder), dtype="bfloat16")
    assert getattr(loaded.model, "hf_quantizer", None) is None
    assert not hasattr(loaded.model.config, "quantization_config")
    assert loaded.dtype == torch.bfloat16
    assert "packed" not in caplog.text
    for name, weight in lm.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name].float(), weight.to(torch.bfloat16).float())

    # Another quantization method is left alone.
    assert not loading._drop_gguf_quantization(type("Config", (), {"quantization_config": {"quant_method": "bnb"}})())

"""Prompt files: save/load round trip, metadata, mismatch errors, PEFT export/import."""
import json

import pytest
import torch
from tiny import tiny_gemma3, tiny_llama

from softprompt.core.prompt_file import (
    export_peft,
    import_peft,
    load_prompt,
    metadata_for,
    read_prompt,
    save_prompt,
)
from softprompt.errors import ModelMismatchError, PromptFileError


def _save(lm, path, length=4, **fields):
    weights = torch.randn(length, lm.hidden_size)
    save_prompt(path, weights, metadata_for(lm, weights, **fields))
    return weights


def test_round_trip_keeps_tensor_and_metadata(tmp_path):
    lm = tiny_llama()
    w = _save(lm, tmp_path / "p.safetensors", init="class-label", task="sst2", label_words=["negative", "positive"],
              train_settings={"learning_rate": 0.3}, best_dev_metric={"name": "accuracy", "value": 91.0})
    saved = load_prompt(tmp_path / "p.safetensors", lm)
    assert torch.equal(saved.tensor, w)
    m = saved.metadata
    assert (m.model_id, m.hidden_size, m.prompt_length, m.task) == ("tiny-llama", lm.hidden_size, 4, "sst2")
    assert m.label_words == ["negative", "positive"]
    assert m.best_dev_metric["value"] == 91.0
    assert m.embedding_fingerprint == lm.fingerprint()
    assert m.format_version == "1"


def test_loading_onto_another_model_names_both(tmp_path):
    _save(tiny_llama(seed=0), tmp_path / "p.safetensors")
    other = tiny_gemma3()
    with pytest.raises(ModelMismatchError, match="tiny-llama.*tiny-gemma3"):
        load_prompt(tmp_path / "p.safetensors", other)
    with pytest.raises(ModelMismatchError):  # same architecture, different weights
        load_prompt(tmp_path / "p.safetensors", tiny_llama(seed=1))


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(PromptFileError, match="not found"):
        read_prompt(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(PromptFileError, match="junk.safetensors"):
        read_prompt(junk)
    from safetensors.torch import save_file
    save_file({"prompt": torch.zeros(2, 3)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(PromptFileError, match="not a softprompt prompt file"):
        read_prompt(tmp_path / "foreign.safetensors")


def test_save_is_atomic_on_failure(tmp_path):
    lm = tiny_llama()
    path = tmp_path / "p.safetensors"
    w = _save(lm, path)
    with pytest.raises(PromptFileError):
        save_prompt(path, torch.randn(3), metadata_for(lm, w))  # wrong rank
    assert torch.equal(read_prompt(path).tensor, w)
    assert [p.name for p in tmp_path.iterdir()] == ["p.safetensors"]  # no temp files left


def test_peft_export_import_round_trip(tmp_path):
    lm = tiny_llama(bos=False)
    w = _save(lm, tmp_path / "p.safetensors", task="sst2")
    export_peft(read_prompt(tmp_path / "p.safetensors"), tmp_path / "adapter", lm)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "PROMPT_TUNING"
    assert config["num_virtual_tokens"] == 4
    back = import_peft(tmp_path / "adapter", lm)
    assert torch.equal(back.tensor, w)
    assert back.metadata.task == "sst2"


def _full_logits_both_ways(lm, w, adapter, text="the movie was great", target="positive"):
    """Logits over the input and target tokens: softprompt's batch vs PeftModel on the same tokens."""
    peft = pytest.importorskip("peft")
    peft_model = peft.PeftModel.from_pretrained(lm.model, adapter)
    row = lm.encode(text, target)
    batch = lm.build_batch([row], w)
    with torch.no_grad():
        ours = lm.model(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                        position_ids=batch.position_ids).logits[0]
        # PEFT adds its virtual tokens itself; the text goes in without special tokens
        ids = torch.tensor([list(row.input_ids) + list(row.target_ids)])
        theirs = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
    n_text = ids.shape[1]
    return ours[-n_text:], theirs[-n_text:]


def test_peft_gives_the_same_full_logits_for_a_model_without_bos(tmp_path):
    lm = tiny_llama(bos=False)
    w = _save(lm, tmp_path / "p.safetensors")
    export_peft(read_prompt(tmp_path / "p.safetensors"), tmp_path / "adapter", lm)
    ours, theirs = _full_logits_both_ways(lm, w, tmp_path / "adapter")
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)


def test_peft_export_with_bos_is_refused_unless_folded_then_exact(tmp_path):
    lm = tiny_llama(bos=True)
    w = _save(lm, tmp_path / "p.safetensors", task="sst2")
    saved = read_prompt(tmp_path / "p.safetensors")
    with pytest.raises(PromptFileError, match="BOS"):
        export_peft(saved, tmp_path / "plain", lm)
    assert not (tmp_path / "plain" / "adapter_config.json").exists()
    export_peft(saved, tmp_path / "adapter", lm, fold_bos=True)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["num_virtual_tokens"] == 5  # BOS + the 4 prompt rows
    ours, theirs = _full_logits_both_ways(lm, w, tmp_path / "adapter")
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    back = import_peft(tmp_path / "adapter", lm)  # the folded BOS row is dropped again
    assert torch.equal(back.tensor, w)
    assert back.metadata.task == "sst2"


def test_unfolded_export_with_bos_would_differ_in_peft(tmp_path):
    """Why the refusal exists: PEFT's [prompt][BOS][input] is not softprompt's [BOS][prompt][input]."""
    lm = tiny_llama(bos=True)
    w = _save(lm, tmp_path / "p.safetensors")
    saved = read_prompt(tmp_path / "p.safetensors")
    no_bos = tiny_llama(bos=False)  # same weights (same seed), a tokenizer that lets the export through
    export_peft(saved, tmp_path / "adapter", no_bos)
    peft = pytest.importorskip("peft")
    peft_model = peft.PeftModel.from_pretrained(lm.model, tmp_path / "adapter")
    row = lm.encode("the movie was great", "positive")
    ids = torch.tensor([list(row.prefix_ids) + list(row.input_ids) + list(row.target_ids)])
    batch = lm.build_batch([row], w)
    with torch.no_grad():
        ours = lm.model(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                        position_ids=batch.position_ids).logits[0, -1]
        theirs = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1]
    assert not torch.allclose(ours, theirs, atol=1e-3)


def test_import_foreign_peft_adapter_needs_model(tmp_path):
    lm = tiny_llama()
    from safetensors.torch import save_file
    folder = tmp_path / "foreign"
    folder.mkdir()
    save_file({"prompt_embeddings": torch.randn(3, lm.hidden_size)}, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 3}))
    with pytest.raises(PromptFileError, match="--model"):
        import_peft(folder)
    assert import_peft(folder, lm).tensor.shape == (3, lm.hidden_size)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(PromptFileError, match="LORA"):
        import_peft(folder, lm)

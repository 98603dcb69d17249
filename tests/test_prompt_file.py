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
    assert m.label_words == ["negative", "positive"] and m.best_dev_metric["value"] == 91.0
    assert m.embedding_fingerprint == lm.fingerprint() and m.format_version == "1"


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
    lm = tiny_llama()
    w = _save(lm, tmp_path / "p.safetensors", task="sst2")
    export_peft(read_prompt(tmp_path / "p.safetensors"), tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "PROMPT_TUNING" and config["num_virtual_tokens"] == 4
    back = import_peft(tmp_path / "adapter", lm)
    assert torch.equal(back.tensor, w) and back.metadata.task == "sst2"


def test_peft_loads_our_export_and_gives_the_same_logits(tmp_path):
    peft = pytest.importorskip("peft")
    lm = tiny_llama(bos=False)  # PEFT puts the prompt before everything, BOS included
    w = _save(lm, tmp_path / "p.safetensors")
    export_peft(read_prompt(tmp_path / "p.safetensors"), tmp_path / "adapter")
    peft_model = peft.PeftModel.from_pretrained(lm.model, tmp_path / "adapter")
    row = lm.encode("the movie was great", "positive")
    batch = lm.build_batch([row], w)
    ids = torch.tensor([list(row.input_ids) + list(row.target_ids)])
    theirs = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -2].log_softmax(-1)
    ours = lm.target_log_probs(batch)
    torch.testing.assert_close(theirs[row.target_ids[0]], ours[0], atol=1e-4, rtol=1e-4)


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

"""A prompt is used as it was trained: its task format and input truncation travel in the file."""
import json

from safetensors import safe_open
from safetensors.torch import save_file
from tiny import tiny_llama

import softprompt as sp
from softprompt.api import evaluate_prompt, prompt_inputs
from softprompt.core.config import PromptConfig, TrainConfig
from softprompt.core.prompt_file import read_prompt
from softprompt.evaluation.evaluator import evaluate


def _train(lm, task, run_dir, max_input_tokens=256):
    return sp.train(lm, task, run_dir, PromptConfig(length=2, init="sampled-vocab"),
                    TrainConfig(batch_size=4, max_steps=2, eval_every=2, learning_rate=0.01,
                                max_input_tokens=max_input_tokens, max_eval_examples=6),
                    max_train_examples=8, show_progress=False)


def test_the_prompt_file_records_format_and_truncation(tmp_path, data_dir):
    lm = tiny_llama()
    result = _train(lm, sp.get_task("rte", data_dir, format="t5"), tmp_path, max_input_tokens=40)
    meta = read_prompt(result.prompt_path).metadata
    assert meta.task_format == "t5"
    assert meta.max_input_tokens == 40
    assert meta.input_tokens == 40


def test_eval_uses_the_prompts_format_and_truncation(tmp_path, data_dir):
    lm = tiny_llama()
    trained_with = sp.get_task("rte", data_dir, format="t5")
    result = _train(lm, trained_with, tmp_path, max_input_tokens=12)
    saved = sp.load_prompt(result.prompt_path, lm)
    lm.max_input_tokens = 512  # what a fresh load gives
    # asked with the default (natural) task, the prompt is still scored in T5's format, cut to 12 tokens
    got = evaluate_prompt(lm, sp.get_task("rte", data_dir), saved, "dev", max_examples=6)
    assert lm.max_input_tokens == 512  # restored
    lm.max_input_tokens = 12
    expected = evaluate(lm, trained_with, trained_with.load("dev")[:6], saved.tensor)
    assert got.metrics == expected.metrics
    assert got.scores == expected.scores
    lm.max_input_tokens = 512
    untruncated = evaluate(lm, trained_with, trained_with.load("dev")[:6], saved.tensor)
    assert untruncated.scores != got.scores  # the truncation matters for these rows


def test_files_from_before_formats_read_as_t5_with_their_recorded_truncation(tmp_path, data_dir):
    lm = tiny_llama()
    result = _train(lm, sp.get_task("rte", data_dir), tmp_path, max_input_tokens=64)
    with safe_open(result.prompt_path, "pt") as f:
        raw = dict(f.metadata())
        tensor = f.get_tensor("prompt")
    for key in ("task_format", "max_input_tokens"):
        raw.pop(key)
    old = tmp_path / "old.safetensors"
    save_file({"prompt": tensor}, old, metadata=raw)
    meta = read_prompt(old).metadata
    assert meta.task_format == "t5"
    assert meta.input_tokens == json.loads(raw["train_settings"])["max_input_tokens"] == 64


def test_raw_text_is_put_in_a_one_field_format(tmp_path, data_dir):
    lm = tiny_llama()
    result = _train(lm, sp.get_task("sst2", data_dir), tmp_path)
    saved = read_prompt(result.prompt_path)
    assert prompt_inputs(saved, ["a great film"]) == [
        sp.get_task("sst2", data_dir).formats["natural"].render({"sentence": "a great film"})]
    rte = _train(lm, sp.get_task("rte", data_dir), tmp_path / "rte")
    # two fields: the caller gives the formatted input
    assert prompt_inputs(read_prompt(rte.prompt_path), ["P\nQuestion: H True or False?\nAnswer:"]) == [
        "P\nQuestion: H True or False?\nAnswer:"]


def test_classify_scores_the_formatted_input(tmp_path, data_dir):
    lm = tiny_llama()
    result = _train(lm, sp.get_task("sst2", data_dir), tmp_path)
    saved = sp.load_prompt(result.prompt_path, lm)
    got = sp.classify(lm, saved, ["a great film"])[0]["scores"]
    lm.max_input_tokens = saved.metadata.input_tokens
    text = prompt_inputs(saved, ["a great film"])[0]
    expected = lm.score_options([text], [saved.metadata.label_words], saved.tensor)[0]
    assert list(got.values()) == expected
    raw = sp.classify(lm, saved, ["a great film"], raw=True)[0]["scores"]
    assert raw != got

"""The server runs each prompt as it was trained: its task format and its input truncation."""
from serving_helpers import make_client, random_prompt
from tiny import tiny_llama

from softprompt.core.prompt_file import metadata_for, save_prompt
from softprompt.tasks.registry import format_inputs

LONG = "the film was really very good and the actors were funny and smart " * 4


def _prompt(lm, folder, name, task, task_format, max_input_tokens, labels=("negative", "positive")):
    tensor = random_prompt(lm, 3, seed=1)
    meta = metadata_for(lm, tensor, task=task, label_words=list(labels), task_format=task_format,
                        max_input_tokens=max_input_tokens)
    save_prompt(folder / f"{name}.safetensors", tensor, meta)
    return tensor


def test_classify_uses_each_prompts_truncation_and_format_in_one_batch(tmp_path):
    lm = tiny_llama()
    folder = tmp_path / "prompts"
    folder.mkdir()
    short = _prompt(lm, folder, "short", "sst2", "natural", 6)
    long = _prompt(lm, folder, "long", "sst2", "t5", 200)
    client = make_client(lm, folder)
    got_short = client.post("/v1/classify", json={"prompt": "short", "inputs": [LONG]}).json()
    got_long = client.post("/v1/classify", json={"prompt": "long", "inputs": [LONG]}).json()
    labels = ["negative", "positive"]
    [natural] = format_inputs("sst2", "natural", [LONG])
    [t5] = format_inputs("sst2", "t5", [LONG])
    assert natural.startswith("sst2 sentence: ")
    assert natural.endswith("\nsentiment:")
    expected_short = lm.score_options([natural], [labels], short, max_input_tokens=6)[0]
    expected_long = lm.score_options([t5], [labels], long, max_input_tokens=200)[0]
    assert [got_short["results"][0]["scores"][w] for w in labels] == expected_short
    assert [got_long["results"][0]["scores"][w] for w in labels] == expected_long
    # the truncation is the prompt's: without it the same row scores differently
    assert lm.score_options([natural], [labels], short, max_input_tokens=200)[0] != expected_short


def test_raw_inputs_are_given_as_they_are(tmp_path):
    lm = tiny_llama()
    folder = tmp_path / "prompts"
    folder.mkdir()
    tensor = _prompt(lm, folder, "p", "sst2", "natural", 64)
    client = make_client(lm, folder)
    got = client.post("/v1/classify", json={"prompt": "p", "inputs": ["a great film"], "raw": True}).json()
    expected = lm.score_options(["a great film"], [["negative", "positive"]], tensor, max_input_tokens=64)[0]
    assert [got["results"][0]["scores"][w] for w in ("negative", "positive")] == expected

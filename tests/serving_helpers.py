"""Shared helpers of the serving tests: tiny prompts, a folder of them, a test client."""
from __future__ import annotations

from pathlib import Path

import torch
from fastapi.testclient import TestClient

from softprompt.core.prompt_file import metadata_for, read_prompt, save_prompt
from softprompt.serving.app import create_app
from softprompt.serving.scheduler import Row
from softprompt.serving.settings import ServerSettings

torch.set_num_threads(1)

ADMIN = {"Authorization": "Bearer admin-secret"}
LABELS = {
    "sst2": ["positive", "negative"],
    "rte": ["entailment", "not_entailment"],
    "boolq": ["yes", "no"],
    "cb": ["entailment", "contradiction", "neutral"],
}
TEXTS = [
    "sst2 sentence : the movie was great", "sst2 sentence : a dull plot", "rte premise : it is long",
    "boolq question : is it good ? passage : the film is fun", "cb premise : the story was sad",
    "the actors were really funny", "a very long and boring film . the plot was bad",
    "what a smart story",
]


def random_prompt(lm, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(length, lm.hidden_size, generator=g) * 2 - 1) * 0.5


def write_prompt(lm, folder: Path, name: str, length: int = 4, seed: int = 0, labels=None) -> Path:
    tensor = random_prompt(lm, length, seed)
    labels = labels if labels is not None else LABELS.get(name, ["positive", "negative"])
    return save_prompt(folder / f"{name}.safetensors", tensor, metadata_for(lm, tensor, task=name, label_words=labels))


def prompt_bytes(lm, tmp_path: Path, name: str = "p", length: int = 3, seed: int = 7, labels=("yes", "no")) -> bytes:
    path = write_prompt(lm, tmp_path / "scratch", name, length, seed, list(labels))
    return path.read_bytes()


def fill_prompts_dir(lm, tmp_path: Path) -> Path:
    """tmp_path/prompts with one prompt per LABELS task, of different lengths on purpose."""
    folder = tmp_path / "prompts"
    folder.mkdir()
    for i, name in enumerate(LABELS):
        write_prompt(lm, folder, name, length=2 + i, seed=i)
    return folder


def make_client(lm, folder, **settings) -> TestClient:
    settings.setdefault("admin_token", "admin-secret")
    settings.setdefault("max_wait_ms", 2)
    return TestClient(create_app(lm, folder, ServerSettings(**settings)))


def alone_scores(lm, folder, name, text, labels):
    tensor = read_prompt(folder / f"{name}.safetensors").tensor
    return lm.score_options([text], [labels], [tensor])[0]


def _make_rows(lm, folder, kind, names, texts, options=None, max_new_tokens=0):
    rows = []
    for name, text in zip(names, texts):
        tensor = read_prompt(folder / f"{name}.safetensors").tensor
        opts = tuple(options[name] if options is not None else LABELS[name]) if kind != "generate" else ()
        rows.append(Row(kind, name, tensor, text, opts, max_new_tokens))
    return rows

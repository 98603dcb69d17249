import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(min(2, torch.get_num_threads()))

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("SOFTPROMPT_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"benchmark data not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def smollm2():
    """The real packaged SmolLM2-135M (converted once into the user cache)."""
    from softprompt.core.loading import load_model

    return load_model("smollm2")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama (tiny.tiny_llama, seed 0) saved as a model folder, loadable by path
    in another process (the CLI, torchrun workers, Ray replicas)."""
    from tiny import tiny_llama

    folder = tmp_path_factory.mktemp("tiny-model")
    lm = tiny_llama()
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder

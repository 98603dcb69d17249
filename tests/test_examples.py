"""The examples shipped in examples/ work as documented."""
from pathlib import Path

import pytest

import softprompt as sp

ROOT = Path(__file__).resolve().parents[1]


def test_own_task_spec_reads_the_shared_data_and_ends_in_an_answer_cue(data_dir):
    if data_dir.resolve() != (ROOT.parent / "shared" / "data").resolve():
        pytest.skip("the example spec points at ../shared/data beside the repository")
    task = sp.get_task(str(ROOT / "examples" / "own_task" / "nli.yaml"))
    train, dev = task.load("train"), task.load("dev")
    assert (len(train), len(dev)) == (250, 56)
    assert task.label_words == ("true", "false", "neither")
    assert task.primary_metric == "macro_f1"
    assert {ex.target for ex in train} == set(task.label_words)
    assert all(ex.input.endswith("\nAnswer:") for ex in train)

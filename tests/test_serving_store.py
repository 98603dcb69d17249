"""Prompt stores (serving/store.py) and replicas sharing one (serving/registry.py): a folder and fsspec."""
from __future__ import annotations

import threading
import uuid

import pytest
import torch
from serving_helpers import LABELS, fill_prompts_dir, prompt_bytes
from tiny import tiny_llama

from softprompt.serving.errors import PreconditionFailed, PromptNotFound
from softprompt.serving.registry import PromptRegistry
from softprompt.serving.store import DirectoryStore, FsspecStore, Precondition, etag_of, open_store

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def lm():
    return tiny_llama()


def _stores(tmp_path):
    return {
        "directory": DirectoryStore(tmp_path / "dir"),
        "fsspec-memory": FsspecStore(f"memory://softprompt-test-{uuid.uuid4().hex}/prompts"),
        "fsspec-local": FsspecStore(f"file://{tmp_path / 'fsspec-local'}"),
    }


@pytest.mark.parametrize("kind", ["directory", "fsspec-memory", "fsspec-local"])
def test_store_roundtrip_preconditions_and_stamps(kind, tmp_path):
    store = _stores(tmp_path)[kind]
    assert store.list() == {}
    assert store.replace("a", b"one", Precondition(if_none_match_any=True)) is True
    stamp1 = store.list()["a"]
    assert store.read("a") == b"one"
    assert store.current_etag("a") == etag_of(b"one")
    assert store.stamp("a") == stamp1
    with pytest.raises(PreconditionFailed):
        store.replace("a", b"two", Precondition(if_none_match_any=True))
    with pytest.raises(PreconditionFailed):
        store.replace("a", b"two", Precondition([etag_of(b"stale")]))
    assert store.replace("a", b"two!", Precondition([etag_of(b"one")])) is False
    assert store.read("a") == b"two!"
    assert store.list()["a"] != stamp1  # the stamp moves with the bytes
    with pytest.raises(PreconditionFailed):
        store.remove("a", Precondition([etag_of(b"one")]))
    store.remove("a", Precondition(["*"]))
    assert store.read("a") is None
    assert store.list() == {}
    assert store.stamp("a") is None
    with pytest.raises(PromptNotFound):
        store.remove("a")
    # only whole files are ever visible: no temp names in the listing while writing
    store.replace("b", b"x" * 1000)
    assert list(store.list()) == ["b"]


def test_open_store_picks_the_backend(tmp_path):
    assert isinstance(open_store(tmp_path / "p"), DirectoryStore)
    assert isinstance(open_store(f"file://{tmp_path / 'q'}"), DirectoryStore)
    assert isinstance(open_store(f"memory://softprompt-{uuid.uuid4().hex}"), FsspecStore)


def test_directory_store_lock_serialises_conditional_writers(tmp_path):
    """Many threads replacing with the same If-Match: exactly one wins, the rest get 412."""
    store = DirectoryStore(tmp_path / "d")
    store.replace("p", b"base")
    base = etag_of(b"base")
    outcomes: list[str] = []

    def writer(i: int) -> None:
        try:
            store.replace("p", f"v{i}".encode(), Precondition([base]))
            outcomes.append("ok")
        except PreconditionFailed:
            outcomes.append("412")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["412"] * 7 + ["ok"]


@pytest.mark.parametrize("kind", ["directory", "fsspec-memory"])
def test_two_replicas_share_one_store(kind, lm, tmp_path):
    """Replica B sees A's upload on a miss at once, and replacements and deletes on its next poll."""
    store = _stores(tmp_path)[kind]
    a = PromptRegistry(store, lm, poll_s=0)
    b = PromptRegistry(open_store(store.location) if kind == "directory" else store, lm, poll_s=0,
                       miss_interval_s=0)
    v1, v2 = prompt_bytes(lm, tmp_path, seed=1), prompt_bytes(lm, tmp_path, seed=2)
    entry, created = a.put("shared", v1)
    assert created
    assert "shared" not in b
    assert b.get("shared", check_store=True).sha256 == entry.sha256 == etag_of(v1)  # miss -> store
    a.put("shared", v2)
    assert b.get("shared").sha256 == etag_of(v1)  # stale until it polls
    assert b.refresh() == 1
    assert b.get("shared").sha256 == etag_of(v2)
    torch.testing.assert_close(b.get("shared").tensor, a.get("shared").tensor)
    a.delete("shared", Precondition([etag_of(v2)]))
    b.refresh()
    with pytest.raises(PromptNotFound):
        b.get("shared", check_store=True)
    # a write through B with A's stale view of the version is refused
    b.put("shared", v1)
    with pytest.raises(PreconditionFailed):
        a.put("shared", v2, Precondition([etag_of(v2)]))


def test_poller_picks_up_changes_within_the_interval(lm, tmp_path):
    folder = fill_prompts_dir(lm, tmp_path)
    a = PromptRegistry(folder, lm, poll_s=0)
    b = PromptRegistry(folder, lm, poll_s=0.05)
    b.start_polling()
    try:
        a.delete("sst2")
        a.put("late", prompt_bytes(lm, tmp_path))
        deadline = threading.Event()
        for _ in range(200):  # up to 2 s; the interval is 0.05 s
            if "late" in b and "sst2" not in b:
                break
            deadline.wait(0.01)
        assert "late" in b
        assert "sst2" not in b
        assert sorted(e.name for e in b.list()) == sorted([n for n in LABELS if n != "sst2"] + ["late"])
    finally:
        b.stop_polling()


def test_half_written_file_is_never_served(lm, tmp_path):
    """A file truncated by a foreign writer is reported unavailable, and the good version it
    replaced keeps its place only in replicas that never saw the broken one."""
    folder = fill_prompts_dir(lm, tmp_path)
    good = (folder / "sst2.safetensors").read_bytes()
    reg = PromptRegistry(folder, lm, poll_s=0)
    (folder / "sst2.safetensors").write_bytes(good[: len(good) // 2])  # not how softprompt writes
    reg.refresh()
    assert "sst2" not in reg
    assert "sst2" in reg.unavailable_list()
    (folder / "sst2.safetensors").write_bytes(good)
    reg.refresh()
    assert "sst2" in reg
    assert reg.get("sst2").sha256 == etag_of(good)

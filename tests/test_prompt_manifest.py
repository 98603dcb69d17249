"""reports/prompts.json: every prompt file a record cites, with its hash and the model it holds."""
import json
import subprocess
import sys
from pathlib import Path

import torch

from softprompt.core.prompt_file import PromptMetadata, save_prompt
from softprompt.experiments.prompt_manifest import (
    build_manifest,
    check_manifest,
    cited_prompts,
    file_sha256,
    kept_over_local_files,
    load_manifest,
    write_manifest,
)

REPO = Path(__file__).resolve().parent.parent


def _prompt(root: Path, rel: str, model: str, task: str, seed: int = 0) -> Path:
    tensor = torch.randn(3, 4, generator=torch.Generator().manual_seed(seed))
    meta = PromptMetadata(model_id=model, embedding_fingerprint="f", hidden_size=4, prompt_length=3, task=task)
    return save_prompt(root / rel, tensor, meta)


def test_the_manifest_hashes_each_cited_prompt_and_check_finds_what_went_wrong(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    a = _prompt(tmp_path, "runs/a/prompt.safetensors", "small", "sst2")
    (tmp_path / "runs/a/result.json").write_text(json.dumps({"run": {"command": "softprompt train --out runs/a"}}))
    (reports / "small.json").write_text(json.dumps({"meta": {"model": "small"}, "path": "runs/a/prompt.safetensors"}))
    (reports / "notes.md").write_text("see `runs/a/prompt.safetensors` and runs/gone/prompt.safetensors.")
    assert cited_prompts(reports) == {
        "runs/a/prompt.safetensors": [(reports / "notes.md").as_posix(), (reports / "small.json").as_posix()],
        "runs/gone/prompt.safetensors": [(reports / "notes.md").as_posix()]}

    manifest = json.loads(write_manifest(reports, tmp_path).read_text())
    entry = manifest["prompts"]["runs/a/prompt.safetensors"]
    assert entry["bytes"] == a.stat().st_size and len(entry["sha256"]) == 64
    assert (entry["model"], entry["task"], entry["made_by"]) == ("small", "sst2", "softprompt train --out runs/a")
    assert entry["cited_by"] == ["reports/notes.md", "reports/small.json"]
    assert manifest["prompts"]["runs/gone/prompt.safetensors"]["sha256"] is None  # not on this machine
    assert check_manifest(manifest, reports, tmp_path) == []

    # a record of another model citing the same path: a later run wrote over the file it measured
    (reports / "big.json").write_text(json.dumps({"settings": {"model": "big"}, "p": "runs/a/prompt.safetensors"}))
    assert check_manifest(manifest, reports, tmp_path) == [
        "runs/a/prompt.safetensors: reports/big.json measured a big prompt there, but the file holds a small prompt "
        "(a later run wrote over it)".replace("reports/big.json", (reports / "big.json").as_posix())]
    (reports / "big.json").unlink()
    # retrained in place: the bytes differ from the hash the records were measured with
    _prompt(tmp_path, "runs/a/prompt.safetensors", "small", "sst2", seed=1)
    assert [p.split(":")[0] for p in check_manifest(manifest, reports, tmp_path)] == ["runs/a/prompt.safetensors"]
    # a rebuild keeps the hash the records were measured with, unless told the records were rebuilt too
    kept = build_manifest(reports, tmp_path, manifest)
    assert kept["prompts"]["runs/a/prompt.safetensors"] == entry
    assert kept_over_local_files(kept, tmp_path) == ["runs/a/prompt.safetensors"]
    rehashed = build_manifest(reports, tmp_path, manifest, rehash=["runs/a/prompt.safetensors"])
    assert rehashed["prompts"]["runs/a/prompt.safetensors"]["sha256"] == file_sha256(a) != entry["sha256"]
    assert check_manifest(rehashed, reports, tmp_path) == [] and kept_over_local_files(rehashed, tmp_path) == []
    # a new record citing a prompt the manifest does not list
    (reports / "new.json").write_text(json.dumps({"prompt": "runs/new/prompt.safetensors"}))
    assert any("runs/new/prompt.safetensors: cited by" in p for p in check_manifest(manifest, reports, tmp_path))

    # rebuilt on a machine without the file: the entry made where the file was is kept
    a.unlink()
    rebuilt = build_manifest(reports, tmp_path, manifest)
    assert rebuilt["prompts"]["runs/a/prompt.safetensors"]["sha256"] == entry["sha256"]


def test_the_committed_manifest_lists_every_prompt_the_committed_records_cite(tmp_path):
    # runs/ is not committed: checked against an empty root, so only the listing and the models count
    manifest = load_manifest(REPO / "reports" / "prompts.json")
    assert manifest["prompts"], "reports/prompts.json is missing or empty"
    assert check_manifest(manifest, REPO / "reports", tmp_path) == []


def test_check_exits_1_and_names_the_prompt(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "r.json").write_text(json.dumps({"prompt": "runs/x/prompt.safetensors"}))
    run = subprocess.run([sys.executable, "-m", "softprompt.cli.experiments", "prompt-manifest", "--check",
                          "--reports", str(reports)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1
    assert "runs/x/prompt.safetensors" in run.stderr


def test_the_cli_keeps_a_recorded_hash_over_a_file_a_later_run_wrote_and_rehash_takes_the_new_one(tmp_path):
    # rerunning the README's main job writes over runs/sst2/prompt.safetensors, which a committed record cites
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "r.json").write_text(json.dumps({"prompt": "runs/a/prompt.safetensors"}))
    _prompt(tmp_path, "runs/a/prompt.safetensors", "small", "sst2")
    manifest = lambda *extra: subprocess.run([sys.executable, "-m", "softprompt.cli.experiments", "prompt-manifest",
                                              "--reports", "reports", *extra], capture_output=True, text=True, cwd=tmp_path)
    assert manifest().returncode == 0
    recorded = load_manifest(reports / "prompts.json")["prompts"]["runs/a/prompt.safetensors"]["sha256"]
    new = _prompt(tmp_path, "runs/a/prompt.safetensors", "small", "sst2", seed=1)
    run = manifest()
    assert run.returncode == 0 and "kept the recorded hash of runs/a/prompt.safetensors" in run.stderr
    assert "--rehash runs/a/prompt.safetensors" in run.stderr
    assert load_manifest(reports / "prompts.json")["prompts"]["runs/a/prompt.safetensors"]["sha256"] == recorded
    run = manifest("--rehash", "runs/a/prompt.safetensors")
    assert run.returncode == 0 and "kept the recorded hash" not in run.stderr
    assert load_manifest(reports / "prompts.json")["prompts"]["runs/a/prompt.safetensors"]["sha256"] == file_sha256(new)

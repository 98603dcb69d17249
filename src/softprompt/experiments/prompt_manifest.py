"""The prompt files the committed records cite, with their SHA-256 (reports/prompts.json).

Records name prompt files under runs/, which is not committed (prompts are outputs, and a rerun
rewrites them). The manifest keeps what a reader elsewhere needs: each cited file's hash and size,
the command that made it where its run folder recorded one, and the records that cite it, so a
prompt retrained (or copied) later can be checked to be the one a record measured.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection
from pathlib import Path

from softprompt.errors import SoftPromptError
from softprompt.fileio import atomic_write

MANIFEST = "prompts.json"
# a prompt path as records write it: relative to the repository root, under runs/
_PROMPT_PATH = re.compile(r"runs/[^\s\"'`<>|]+?\.safetensors")


def cited_prompts(reports: str | Path) -> dict[str, list[str]]:
    """{prompt path: the record files (JSON or Markdown under `reports`) that name it}."""
    reports = Path(reports)
    cited: dict[str, set[str]] = {}
    for path in sorted([*reports.rglob("*.json"), *reports.rglob("*.md")]):
        if path.name == MANIFEST:
            continue
        for prompt in _PROMPT_PATH.findall(path.read_text(errors="replace")):
            cited.setdefault(prompt, set()).add(path.as_posix())
    return {prompt: sorted(files) for prompt, files in sorted(cited.items())}


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _identity(prompt: Path) -> dict:
    """The model and task the file itself names (a record that cites a path another run has since
    overwritten shows here as a mismatch)."""
    from softprompt.core.prompt_file import read_prompt

    try:
        meta = read_prompt(prompt).metadata
    except SoftPromptError:
        return {"model": None, "task": None}
    return {"model": meta.model_id, "task": meta.task}


def made_by(prompt: Path) -> str | None:
    """The command its run folder's result.json recorded (`softprompt train` runs), if any."""
    result = prompt.parent / "result.json"
    try:
        return json.loads(result.read_text()).get("run", {}).get("command") or None
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def load_manifest(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        return {"prompts": {}}
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SoftPromptError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest.get("prompts"), dict):
        raise SoftPromptError(f"{path}: no 'prompts' object")
    return manifest


def build_manifest(reports: str | Path, root: str | Path = ".", previous: dict | None = None,
                   rehash: Collection[str] = ()) -> dict:
    """An entry per cited prompt: hashed from the file where it exists under `root`; else the
    `previous` manifest's entry is kept (another machine made it), else its hash is null.

    A local file whose bytes differ from the previous entry's hash keeps the previous entry: the
    records were measured with that prompt, and a later run wrote over the file (rerunning the
    README's main job does). Paths in `rehash` take the local file's hash: it was retrained and
    its records were rebuilt from it."""
    root = Path(root)
    old = (previous or {}).get("prompts", {})
    prompts: dict[str, dict] = {}
    for prompt, citing in cited_prompts(reports).items():
        file = root / prompt
        was = old.get(prompt, {})
        digest = file_sha256(file) if file.is_file() else None
        if digest and (prompt in rehash or not was.get("sha256") or digest == was["sha256"]):
            entry = {"sha256": digest, "bytes": file.stat().st_size, **_identity(file), "made_by": made_by(file)}
        else:
            entry = {k: was.get(k) for k in ("sha256", "bytes", "model", "task", "made_by")}
        prompts[prompt] = {**entry, "cited_by": [Path(c).relative_to(root).as_posix() if Path(c).is_relative_to(root)
                                                 else c for c in citing]}
    return {"about": "SHA-256 of each prompt file a committed record cites (null: the file was not on the machine "
                     "that built this); rebuild with `softprompt experiment prompt-manifest`",
            "prompts": prompts}


def kept_over_local_files(manifest: dict, root: str | Path = ".") -> list[str]:
    """The cited prompts whose local file differs from the hash the manifest keeps for it."""
    root = Path(root)
    return [prompt for prompt, entry in manifest.get("prompts", {}).items()
            if entry.get("sha256") and (root / prompt).is_file() and file_sha256(root / prompt) != entry["sha256"]]


def record_model_of(path: str | Path) -> str | None:
    """The one model a JSON record was made with (None: Markdown, or a record of several models)."""
    from softprompt.experiments.study_sections import record_model

    if Path(path).suffix != ".json":
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    for part in (data.get("meta"), data.get("settings")):
        if isinstance(part, dict) and isinstance(part.get("model"), str):
            return part["model"]
    model = record_model(data)
    return None if model == "-" else model


def check_manifest(manifest: dict, reports: str | Path, root: str | Path = ".") -> list[str]:
    """What is wrong: a cited prompt the manifest lacks; a record of one model citing a file that
    holds another model's prompt (a later run wrote over it); a local file whose bytes differ from
    its entry (retrained since). Files not present are not errors: runs/ is not committed."""
    root = Path(root)
    problems = []
    entries = manifest.get("prompts", {})
    cited = cited_prompts(reports)
    # a record cites many prompts: read each record's model once
    models = {record: record_model_of(record) for record in {r for citing in cited.values() for r in citing}}
    differ = set(kept_over_local_files(manifest, root))
    for prompt, citing in cited.items():
        entry = entries.get(prompt)
        if entry is None:
            problems.append(f"{prompt}: cited by {', '.join(citing)} but not in the manifest")
            continue
        for record in citing:
            model = models[record]
            if entry.get("model") and model and model != entry["model"]:
                problems.append(f"{prompt}: {record} measured a {model} prompt there, but the file holds a "
                                f"{entry['model']} prompt (a later run wrote over it)")
        if prompt in differ:
            problems.append(f"{prompt}: its bytes differ from the manifest's sha256 (retrained or replaced since "
                            f"{', '.join(citing)} measured it)")
    return problems


def write_manifest(reports: str | Path = "reports", root: str | Path = ".", rehash: Collection[str] = ()) -> Path:
    path = Path(reports) / MANIFEST
    manifest = build_manifest(reports, root, load_manifest(path), rehash)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1) + "\n"))
    return path

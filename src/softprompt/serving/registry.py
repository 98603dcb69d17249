"""The on-disk prompt registry: every DIR/<name>.safetensors file is the prompt <name>.

Uploads are validated (safetensors parses, metadata complete, tensor [length, hidden] finite
floating point, trained for the loaded model's embeddings, size limit) while they sit in a
temp file next to their final path, and only then renamed into place (atomic_write: write,
fsync, os.replace; then the folder is fsynced). A server killed at any point therefore
restarts with every accepted prompt intact and never sees a half-written one: on startup the
registry deletes stray temp files (".<name>.safetensors.*.tmp") and reports, without
serving, any file it cannot load (e.g. truncated or for another model).

A request holds a reference to its prompt's tensor from submission, so replacing or deleting
a prompt only affects requests that arrive after the change.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from softprompt.core.model import PromptedLM
from softprompt.core.prompt_file import PromptMetadata, check_compatible, read_prompt
from softprompt.errors import ModelMismatchError, PromptFileError
from softprompt.fileio import atomic_write
from softprompt.serving.errors import PromptNotFound, PromptRejected, ServingError, TooLarge

log = logging.getLogger("softprompt.serving")

SUFFIX = ".safetensors"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_NAME_RE = re.compile(NAME_PATTERN)
# atomic_write's temp files: mkstemp(prefix=".<final name>.", suffix=".tmp")
_TEMP_RE = re.compile(r"^\..+\.safetensors\..+\.tmp$")


def valid_name(name: str) -> bool:
    return bool(_NAME_RE.match(name)) and not name.endswith(SUFFIX)


@dataclass
class RegisteredPrompt:
    name: str
    tensor: Tensor              # [length, hidden], on the model's device and dtype
    metadata: PromptMetadata
    path: Path
    size_bytes: int
    sha256: str
    updated_at: float           # file modification time (Unix seconds)

    @property
    def length(self) -> int:
        return self.tensor.shape[0]

    def info(self) -> dict[str, Any]:
        m = self.metadata
        return {
            "name": self.name,
            "task": m.task,
            "label_words": m.label_words,
            "model_id": m.model_id,
            "embedding_fingerprint": m.embedding_fingerprint,
            "hidden_size": m.hidden_size,
            "prompt_length": m.prompt_length,
            "init": m.init,
            "train_settings": m.train_settings,
            "best_dev_metric": m.best_dev_metric,
            "format_version": m.format_version,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "updated_at": self.updated_at,
        }


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class PromptRegistry:
    """Thread-safe name -> prompt map backed by a folder of prompt files."""

    def __init__(self, directory: str | Path, lm: PromptedLM, max_upload_bytes: int = 16 * 1024 * 1024):
        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.lm = lm
        self.max_upload_bytes = max_upload_bytes
        self._prompts: dict[str, RegisteredPrompt] = {}
        # Files present but not served: name -> (HTTP status for requests naming it, reason).
        self.unavailable: dict[str, tuple[int, str]] = {}
        self.removed_temp_files: list[str] = []
        self._lock = threading.Lock()          # guards the two dicts
        self._write_lock = threading.Lock()    # serialises uploads and deletes (disk order = memory order)
        lm.fingerprint()  # computed once here, not concurrently by upload threads
        self.load_all()

    # ----------------------------------------------------------------- loading
    def path_for(self, name: str) -> Path:
        return self.directory / f"{name}{SUFFIX}"

    def _entry(self, name: str, path: Path, data: bytes | None = None, source: str | None = None) -> RegisteredPrompt:
        saved = read_prompt(path)
        check_compatible(saved.metadata, self.lm, source or f"prompt {name!r} ({path})")
        if data is None:
            data = path.read_bytes()
        tensor = saved.tensor.to(device=self.lm.device, dtype=self.lm.dtype)
        return RegisteredPrompt(
            name=name, tensor=tensor, metadata=saved.metadata, path=self.path_for(name),
            size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), updated_at=time.time(),
        )

    def load_all(self) -> None:
        """(Re)load the folder: remove stray temp files, load every *.safetensors file."""
        with self._write_lock:
            for child in sorted(self.directory.iterdir()):
                if child.is_file() and _TEMP_RE.match(child.name):
                    try:
                        child.unlink()
                        self.removed_temp_files.append(child.name)
                        log.warning("removed the unfinished upload %s", child)
                    except OSError as err:
                        log.warning("could not remove the unfinished upload %s: %s", child, err)
            prompts: dict[str, RegisteredPrompt] = {}
            unavailable: dict[str, tuple[int, str]] = {}
            for path in sorted(self.directory.glob(f"*{SUFFIX}")):
                name = path.name[: -len(SUFFIX)]
                if name.startswith(".") or not path.is_file():
                    continue
                try:
                    entry = self._entry(name, path)
                    entry.updated_at = path.stat().st_mtime
                    prompts[name] = entry
                except ModelMismatchError as err:
                    unavailable[name] = (409, str(err))
                except (PromptFileError, OSError) as err:
                    unavailable[name] = (422, f"prompt file {path.name} cannot be loaded: {err}")
            for name, (_, reason) in unavailable.items():
                log.warning("not serving prompt %r: %s", name, reason)
            with self._lock:
                self._prompts = prompts
                self.unavailable = unavailable
        log.info("loaded %d prompt(s) from %s", len(prompts), self.directory)

    # ----------------------------------------------------------------- reading
    def get(self, name: str) -> RegisteredPrompt:
        with self._lock:
            entry = self._prompts.get(name)
            if entry is not None:
                return entry
            problem = self.unavailable.get(name)
        if problem is not None:
            raise ServingError(f"prompt {name!r} is not served: {problem[1]}", status=problem[0])
        raise PromptNotFound(f"unknown prompt {name!r}; GET /v1/prompts lists the available ones")

    def list(self) -> list[RegisteredPrompt]:
        with self._lock:
            return [self._prompts[k] for k in sorted(self._prompts)]

    def unavailable_list(self) -> dict[str, str]:
        with self._lock:
            return {k: reason for k, (_, reason) in sorted(self.unavailable.items())}

    def __len__(self) -> int:
        with self._lock:
            return len(self._prompts)

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self._prompts

    # ----------------------------------------------------------------- writing
    def put(self, name: str, data: bytes) -> tuple[RegisteredPrompt, bool]:
        """Validate and store an uploaded prompt file; returns (entry, created)."""
        if not valid_name(name):
            raise PromptRejected(
                f"invalid prompt name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
                f"starting with a letter or digit")
        if len(data) > self.max_upload_bytes:
            raise TooLarge(f"prompt file is {len(data)} bytes; the limit is {self.max_upload_bytes}")
        if not data:
            raise PromptRejected("empty body: send the prompt file's bytes (application/octet-stream)")
        path = self.path_for(name)
        holder: dict[str, RegisteredPrompt] = {}
        source = f"uploaded prompt {name!r}"

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                f.write(data)
            try:
                holder["entry"] = self._entry(name, Path(tmp), data, source)
            except ModelMismatchError as err:
                raise PromptRejected(str(err), status=409) from None
            except PromptFileError as err:
                raise PromptRejected(str(err).replace(str(tmp), source)) from None

        with self._write_lock:
            atomic_write(path, write)
            _fsync_dir(self.directory)
            entry = holder["entry"]
            entry.updated_at = path.stat().st_mtime
            with self._lock:
                created = name not in self._prompts
                self._prompts[name] = entry
                self.unavailable.pop(name, None)
        log.info("%s prompt %r (%d bytes)", "added" if created else "replaced", name, len(data))
        return entry, created

    def delete(self, name: str) -> None:
        with self._write_lock:
            path = self.path_for(name)
            with self._lock:
                known = name in self._prompts or name in self.unavailable
            if not known and not (valid_name(name) and path.is_file()):
                raise PromptNotFound(f"unknown prompt {name!r}")
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            _fsync_dir(self.directory)
            with self._lock:
                self._prompts.pop(name, None)
                self.unavailable.pop(name, None)
        log.info("deleted prompt %r", name)


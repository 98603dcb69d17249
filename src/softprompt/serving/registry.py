"""The prompt registry: the prompts one server (or Ray Serve replica) serves, read from a store.

Every <name>.safetensors file in the store (a folder, or an object store through fsspec; see
store.py) is the prompt <name>. The registry keeps each one loaded on the model's device and
keeps the map in step with the store:

- uploads are validated here once (safetensors parses, metadata complete, tensor [length,
  hidden] finite floating point, trained for the loaded model's embeddings, size limit), then
  written atomically to the store under its write lock, after the If-Match / If-None-Match
  precondition is checked against the stored bytes (412 on a mismatch);
- changes made through other replicas are picked up by polling the store's listing every
  `poll_s` seconds (`refresh`), and a request for a name this replica does not know checks the
  store at once (at most once per `miss_interval_s` per name) before answering 404. So an
  upload or delete through any replica is served (or no longer served) by every replica within
  poll_s + the time to load one prompt file, and at once after a miss;
- a file that cannot be loaded (truncated by another writer, another model) is listed as
  unavailable with the reason, never served; a replica never serves a half-written file
  because stores only ever expose whole files.

A request holds a reference to its prompt's tensor from submission, so replacing or deleting
a prompt only affects requests that arrive after the change.
"""
from __future__ import annotations

import logging
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from softprompt.core.model import PromptedLM
from softprompt.core.prompt_file import PromptMetadata, SavedPrompt, check_compatible, read_prompt
from softprompt.errors import ModelMismatchError, PromptFileError
from softprompt.serving.errors import (
    PreconditionRequired,
    PromptNotFound,
    PromptRejected,
    ServingError,
    TooLarge,
)
from softprompt.serving.store import SUFFIX, DirectoryStore, Precondition, PromptStore, etag_of, open_store

log = logging.getLogger("softprompt.serving")

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_NAME_RE = re.compile(NAME_PATTERN)


def valid_name(name: str) -> bool:
    return bool(_NAME_RE.match(name)) and not name.endswith(SUFFIX)


@dataclass
class RegisteredPrompt:
    name: str
    tensor: Tensor              # [length, hidden], on the model's device and dtype
    metadata: PromptMetadata
    path: str                   # where it is stored (file path or URL)
    size_bytes: int
    sha256: str                 # also its ETag
    updated_at: float           # when the stored file was written (Unix seconds; else when loaded)
    stamp: str | None = None    # the store listing's change stamp it was loaded at

    @property
    def length(self) -> int:
        return self.tensor.shape[0]

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'

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


def parse_prompt_bytes(data: bytes, source: str) -> SavedPrompt:
    """Parse a prompt file held in memory (error messages name `source`, not a temp path)."""
    with tempfile.TemporaryDirectory(prefix="softprompt-upload-") as folder:
        tmp = Path(folder) / f"upload{SUFFIX}"
        tmp.write_bytes(data)
        try:
            return read_prompt(tmp)
        except PromptFileError as err:
            raise PromptFileError(str(err).replace(str(tmp), source)) from None


class PromptRegistry:
    """Thread-safe name -> prompt map backed by a PromptStore (or a folder path / fsspec URL)."""

    def __init__(self, store: "str | Path | PromptStore", lm: PromptedLM, max_upload_bytes: int = 16 * 1024 * 1024,
                 poll_s: float = 2.0, miss_interval_s: float = 0.5, require_if_match: bool = False):
        self.store = open_store(store)
        self.lm = lm
        self.max_upload_bytes = max_upload_bytes
        self.poll_s = poll_s
        self.miss_interval_s = miss_interval_s
        self.require_if_match = require_if_match
        self._prompts: dict[str, RegisteredPrompt] = {}
        # Files present but not served: name -> (HTTP status for requests naming it, reason, stamp).
        self._unavailable: dict[str, tuple[int, str, str | None]] = {}
        self.removed_temp_files: list[str] = []
        self._lock = threading.Lock()          # guards the two dicts
        self._write_lock = threading.RLock()   # serialises this replica's writes and refreshes
        self._misses: dict[str, float] = {}
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self.last_refresh = 0.0
        lm.fingerprint()  # computed once here, not concurrently by upload threads
        self.load_all()

    @property
    def directory(self) -> Path | None:
        return self.store.directory if isinstance(self.store, DirectoryStore) else None

    @property
    def unavailable(self) -> dict[str, tuple[int, str]]:
        with self._lock:
            return {k: (status, reason) for k, (status, reason, _) in self._unavailable.items()}

    # ----------------------------------------------------------------- loading
    def _load(self, name: str, data: bytes, stamp: str | None, source: str) -> RegisteredPrompt:
        saved = parse_prompt_bytes(data, source)
        check_compatible(saved.metadata, self.lm, source)
        tensor = saved.tensor.to(device=self.lm.device, dtype=self.lm.dtype)
        location = str(self.store.path_for(name)) if isinstance(self.store, DirectoryStore) else \
            f"{self.store.location.rstrip('/')}/{name}{SUFFIX}"
        return RegisteredPrompt(name=name, tensor=tensor, metadata=saved.metadata, path=location,
                                size_bytes=len(data), sha256=etag_of(data), updated_at=time.time(), stamp=stamp)

    def _load_stored(self, name: str, stamp: str | None) -> None:
        """(Re)load one stored prompt into the map, or record why it is unavailable (lock held)."""
        data = self.store.read(name)
        if data is None:  # deleted since it was listed
            with self._lock:
                self._prompts.pop(name, None)
                self._unavailable.pop(name, None)
            return
        source = f"prompt file {name}{SUFFIX}"
        try:
            entry = self._load(name, data, stamp, source)
            entry.updated_at = self.store.modified(name) or entry.updated_at
        except ModelMismatchError as err:
            problem = (409, str(err), stamp)
        except PromptFileError as err:
            problem = (422, f"{source} cannot be loaded: {err}", stamp)
        else:
            with self._lock:
                self._prompts[name] = entry
                self._unavailable.pop(name, None)
            return
        log.warning("not serving prompt %r: %s", name, problem[1])
        with self._lock:
            self._prompts.pop(name, None)
            self._unavailable[name] = problem

    def load_all(self) -> None:
        """Remove what killed writers left behind, then load every stored prompt."""
        self.removed_temp_files.extend(self.store.cleanup())
        self.refresh()
        log.info("loaded %d prompt(s) from %s", len(self), self.store.describe())

    def refresh(self) -> int:
        """Bring the map in step with the store's listing; returns how many names changed."""
        with self._write_lock:
            listing = self.store.list()
            changed = 0
            with self._lock:
                known = {n: e.stamp for n, e in self._prompts.items()}
                known.update({n: p[2] for n, p in self._unavailable.items()})
            for name in sorted(listing):
                if known.get(name) != listing[name] and valid_name(name):
                    self._load_stored(name, listing[name])
                    changed += 1
            with self._lock:
                for name in [n for n in self._prompts if n not in listing]:
                    del self._prompts[name]
                    changed += 1
                for name in [n for n in self._unavailable if n not in listing]:
                    del self._unavailable[name]
                    changed += 1
            self.last_refresh = time.monotonic()
        if changed:
            log.info("prompt store %s: %d change(s) picked up", self.store.describe(), changed)
        return changed

    # ----------------------------------------------------------------- polling
    def start_polling(self) -> None:
        """Refresh from the store every poll_s seconds in a daemon thread (no-op if poll_s <= 0)."""
        if self.poll_s <= 0 or self._poller is not None:
            return
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, name="softprompt-store-poll", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(10)
            self._poller = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception:  # a store hiccup must not stop the poller
                log.exception("refreshing prompts from %s failed", self.store.describe())

    # ----------------------------------------------------------------- reading
    def get(self, name: str, check_store: bool = False) -> RegisteredPrompt:
        """The served prompt `name`. check_store: on a miss, look in the store first (blocking
        I/O: call it from a worker thread)."""
        with self._lock:
            entry = self._prompts.get(name)
            if entry is not None:
                return entry
            problem = self._unavailable.get(name)
        if problem is None and check_store and valid_name(name):
            now = time.monotonic()
            with self._lock:
                due = now - self._misses.get(name, -1e9) >= self.miss_interval_s
                if due:
                    if len(self._misses) > 4096:
                        self._misses.clear()
                    self._misses[name] = now
            if due:
                with self._write_lock:
                    stamp = self.store.stamp(name)
                    if stamp is not None:
                        self._load_stored(name, stamp)
                return self.get(name)
        if problem is not None:
            raise ServingError(f"prompt {name!r} is not served: {problem[1]}", status=problem[0])
        raise PromptNotFound(f"unknown prompt {name!r}; GET /v1/prompts lists the available ones")

    def list(self) -> list[RegisteredPrompt]:
        with self._lock:
            return [self._prompts[k] for k in sorted(self._prompts)]

    def unavailable_list(self) -> dict[str, str]:
        with self._lock:
            return {k: p[1] for k, p in sorted(self._unavailable.items())}

    def __len__(self) -> int:
        with self._lock:
            return len(self._prompts)

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self._prompts

    # ----------------------------------------------------------------- writing
    def _require(self, precondition: Precondition | None, what: str) -> None:
        if self.require_if_match and (precondition is None or precondition.empty):
            raise PreconditionRequired(
                f"this server requires a precondition to {what} a prompt: send If-Match: \"<ETag>\" "
                f"(from GET /v1/prompts/{{name}}) to replace or delete, If-None-Match: * to create")

    def put(self, name: str, data: bytes, precondition: Precondition | None = None) -> tuple[RegisteredPrompt, bool]:
        """Validate and store an uploaded prompt file; returns (entry, created)."""
        if not valid_name(name):
            raise PromptRejected(
                f"invalid prompt name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
                f"starting with a letter or digit")
        if len(data) > self.max_upload_bytes:
            raise TooLarge(f"prompt file is {len(data)} bytes; the limit is {self.max_upload_bytes}")
        if not data:
            raise PromptRejected("empty body: send the prompt file's bytes (application/octet-stream)")
        self._require(precondition, "upload")
        source = f"uploaded prompt {name!r}"
        try:
            entry = self._load(name, data, None, source)
        except ModelMismatchError as err:
            raise PromptRejected(str(err), status=409) from None
        except PromptFileError as err:
            raise PromptRejected(str(err)) from None
        with self._write_lock:
            created = self.store.replace(name, data, precondition)
            with self._lock:  # replacing a file that was not servable counts as creating the prompt
                created = created or name in self._unavailable
            entry.stamp = self.store.stamp(name)
            entry.updated_at = self.store.modified(name) or entry.updated_at
            with self._lock:
                self._prompts[name] = entry
                self._unavailable.pop(name, None)
        log.info("%s prompt %r (%d bytes)", "added" if created else "replaced", name, len(data))
        return entry, created

    def delete(self, name: str, precondition: Precondition | None = None) -> None:
        if not valid_name(name):
            raise PromptNotFound(f"unknown prompt {name!r}")
        self._require(precondition, "delete")
        with self._write_lock:
            try:
                self.store.remove(name, precondition)
            finally:
                if self.store.stamp(name) is None:
                    with self._lock:
                        self._prompts.pop(name, None)
                        self._unavailable.pop(name, None)
        log.info("deleted prompt %r", name)

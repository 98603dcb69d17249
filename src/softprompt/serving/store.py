"""Where prompt files live: a folder (local or a shared volume) or an object store via fsspec.

Every server process (or Ray Serve replica) reads prompts from one store; an upload or a
delete through any of them is written to the store, and the others pick it up by polling
its listing (see PromptRegistry). A store only moves bytes; validating a prompt file against
the model is the registry's job.

    DirectoryStore("prompts/")                     prompts/<name>.safetensors
    FsspecStore("s3://bucket/prompts")             any fsspec URL (s3://, gs://, memory://, file://)
    open_store("prompts/") / open_store("s3://...")   picks one of them

Versions: a prompt's version (its HTTP ETag) is the SHA-256 of its file's bytes, the same on
every replica. `replace` and `remove` take an optional precondition (If-Match / If-None-Match)
and check it against the bytes in the store, not against a replica's cache, under the store's
write lock:
    DirectoryStore  an exclusive flock on the folder itself, so writers in different processes (on
                    one machine, or on a shared volume whose locks work across machines, e.g.
                    NFSv4) check-and-write one at a time;
    FsspecStore     a lock per process only: object stores have no common lock primitive, so two
                    replicas writing the same prompt within the same few milliseconds can both
                    pass the check (last write wins). Send admin writes through one replica (or
                    use a DirectoryStore on a shared volume) when that matters.
Writes are atomic: readers see the old file or the new one, never a half-written one (local
files: temp file + rename; object stores: a PUT is atomic per object).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Sequence  # List: the stores' own `list` method shadows the builtin

from softprompt.fileio import atomic_write
from softprompt.serving.errors import PreconditionFailed, PromptNotFound

log = logging.getLogger("softprompt.serving")

SUFFIX = ".safetensors"
# atomic_write's temp files: mkstemp(prefix=".<final name>.", suffix=".tmp")
TEMP_RE = re.compile(r"^\..+\.safetensors\..+\.tmp$")


def etag_of(data: bytes) -> str:
    """A prompt version: the SHA-256 of the file's bytes (hex, unquoted)."""
    return hashlib.sha256(data).hexdigest()


class Precondition:
    """An HTTP precondition on a write: If-Match (a list of ETags or "*") and/or If-None-Match: *."""

    def __init__(self, if_match: Sequence[str] | None = None, if_none_match_any: bool = False):
        self.if_match = list(if_match) if if_match is not None else None
        self.if_none_match_any = if_none_match_any

    @classmethod
    def from_headers(cls, if_match: str | None, if_none_match: str | None) -> "Precondition":
        tags = None
        if if_match is not None:
            tags = [t.strip() for t in if_match.split(",") if t.strip()]
            tags = ["*" if t == "*" else t.strip('"') for t in tags if not t.startswith("W/")]  # strong compare only
        return cls(tags, (if_none_match or "").strip() == "*")

    @property
    def empty(self) -> bool:
        return self.if_match is None and not self.if_none_match_any

    def check(self, name: str, current: str | None) -> None:
        """Raise PreconditionFailed (412) unless the current version (None: absent) satisfies it."""
        if self.if_none_match_any and current is not None:
            raise PreconditionFailed(f"prompt {name!r} already exists (If-None-Match: *); its ETag is \"{current}\"")
        if self.if_match is None:
            return
        if current is None:
            raise PreconditionFailed(f"prompt {name!r} does not exist, so If-Match cannot match")
        if "*" not in self.if_match and current not in self.if_match:
            raise PreconditionFailed(
                f"prompt {name!r} was changed by someone else: its ETag is \"{current}\", not "
                f"{', '.join(chr(34) + t + chr(34) for t in self.if_match)}; GET it again and retry")


class PromptStore(ABC):
    """name -> prompt file bytes, with a cheap listing for change detection."""

    location: str

    # --------------------------------------------------------------- backend primitives
    @abstractmethod
    def list(self) -> dict[str, str]:
        """Every stored prompt name -> a stamp that changes whenever its bytes change."""

    @abstractmethod
    def read(self, name: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""

    @abstractmethod
    def stamp(self, name: str) -> str | None:
        """The listing stamp of one name (None when absent)."""

    def modified(self, name: str) -> float | None:
        """When the stored file was last written (Unix seconds), if the backend knows."""
        return None

    @abstractmethod
    def _put(self, name: str, data: bytes) -> None:
        """Write atomically (readers never see a partial file)."""

    @abstractmethod
    def _remove(self, name: str) -> None: ...

    @contextmanager
    def lock(self) -> Iterator[None]:
        """The write lock held while a precondition is checked and the write is done."""
        with self._thread_lock:
            yield

    def cleanup(self) -> List[str]:
        """Remove what killed writers left behind; returns what was removed."""
        return []

    def describe(self) -> str:
        return self.location

    # --------------------------------------------------------------- conditional writes
    def current_etag(self, name: str) -> str | None:
        data = self.read(name)
        return None if data is None else etag_of(data)

    def replace(self, name: str, data: bytes, precondition: Precondition | None = None) -> bool:
        """Write `data` as `name` if the precondition holds; returns True when it was created."""
        with self.lock():
            current = self.current_etag(name)
            if precondition is not None:
                precondition.check(name, current)
            self._put(name, data)
            return current is None

    def remove(self, name: str, precondition: Precondition | None = None) -> None:
        with self.lock():
            current = self.current_etag(name)
            if current is None:
                raise PromptNotFound(f"unknown prompt {name!r}")
            if precondition is not None:
                precondition.check(name, current)
            self._remove(name)

    def __init__(self) -> None:
        self._thread_lock = threading.RLock()


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


class DirectoryStore(PromptStore):
    """DIR/<name>.safetensors files; writes are atomic renames under an flock on DIR."""

    def __init__(self, directory: str | Path):
        super().__init__()
        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.location = str(self.directory)

    def path_for(self, name: str) -> Path:
        return self.directory / f"{name}{SUFFIX}"

    def list(self) -> dict[str, str]:
        out = {}
        for entry in os.scandir(self.directory):
            if entry.name.startswith(".") or not entry.name.endswith(SUFFIX):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            if not entry.is_file():
                continue
            # a rename gives a new inode, so the stamp changes even within one mtime tick
            out[entry.name[: -len(SUFFIX)]] = f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"
        return out

    def stamp(self, name: str) -> str | None:
        try:
            st = self.path_for(name).stat()
        except FileNotFoundError:
            return None
        return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"

    def modified(self, name: str) -> float | None:
        try:
            return self.path_for(name).stat().st_mtime
        except FileNotFoundError:
            return None

    def read(self, name: str) -> bytes | None:
        try:
            return self.path_for(name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def _put(self, name: str, data: bytes) -> None:
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                f.write(data)

        atomic_write(self.path_for(name), write)
        _fsync_dir(self.directory)

    def _remove(self, name: str) -> None:
        try:
            self.path_for(name).unlink()
        except FileNotFoundError:
            pass
        _fsync_dir(self.directory)

    @contextmanager
    def lock(self) -> Iterator[None]:
        import fcntl

        with self._thread_lock:
            fd = os.open(self.directory, os.O_RDONLY)  # lock the folder itself: no lock file to clutter it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock

    def cleanup(self) -> List[str]:
        """Delete atomic_write temp files left by a killed writer (under the write lock, so a
        live writer's temp file in another process is never removed)."""
        removed = []
        with self.lock():
            for child in sorted(self.directory.iterdir()):
                if child.is_file() and TEMP_RE.match(child.name):
                    try:
                        child.unlink()
                        removed.append(child.name)
                        log.warning("removed the unfinished upload %s", child)
                    except OSError as err:
                        log.warning("could not remove the unfinished upload %s: %s", child, err)
        return removed


class FsspecStore(PromptStore):
    """Prompt files under an fsspec URL: s3://bucket/prefix, gs://..., memory://..., file://...

    Needs fsspec and the backend's package (s3fs, gcsfs). storage_options go to the filesystem
    (credentials, endpoint_url...). See the module docstring for what the write lock covers.
    """

    def __init__(self, url: str, **storage_options):
        super().__init__()
        try:
            import fsspec
        except ImportError as err:  # pragma: no cover - fsspec comes with the serving dependencies
            raise ImportError("FsspecStore needs fsspec: pip install fsspec (or 'softprompt[serve-ray]')") from err
        self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        self.root = root.rstrip("/")
        self.location = url
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.local = protocol in ("file", "local")
        self.fs.makedirs(self.root, exist_ok=True)

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}{SUFFIX}"

    @staticmethod
    def _stamp(info: dict) -> str:
        keys = ("size", "ETag", "etag", "md5Hash", "generation", "mtime", "LastModified", "updated", "created", "ino")
        parts = []
        for k in keys:
            v = info.get(k)
            if v is not None:  # ls and info may give one time as a float or as a datetime
                parts.append(repr(v.timestamp()) if hasattr(v, "timestamp") else str(v))
        return "|".join(parts)

    def list(self) -> dict[str, str]:
        self.fs.invalidate_cache(self.root)
        try:
            infos = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return {}
        out = {}
        for info in infos:
            base = str(info["name"]).rstrip("/").rsplit("/", 1)[-1]
            if info.get("type") == "file" and base.endswith(SUFFIX) and not base.startswith("."):
                out[base[: -len(SUFFIX)]] = self._stamp(info)
        return out

    def stamp(self, name: str) -> str | None:
        self.fs.invalidate_cache(self.root)
        try:
            return self._stamp(self.fs.info(self._path(name)))
        except FileNotFoundError:
            return None

    def modified(self, name: str) -> float | None:
        try:
            return self.fs.modified(self._path(name)).timestamp()
        except (FileNotFoundError, NotImplementedError, AttributeError, ValueError):
            return None

    def read(self, name: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(name))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def _put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        if self.local:  # a local file is not replaced atomically by a write: write beside it, rename
            atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
        else:
            self.fs.pipe_file(path, data)
        self.fs.invalidate_cache(self.root)

    def _remove(self, name: str) -> None:
        try:
            self.fs.rm_file(self._path(name))
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache(self.root)


def open_store(spec: "str | Path | PromptStore") -> PromptStore:
    """A store from a folder path, a file:// URL or another fsspec URL (s3://, gs://, memory://)."""
    if isinstance(spec, PromptStore):
        return spec
    text = str(spec)
    if "://" not in text:
        return DirectoryStore(text)
    if text.startswith("file://"):
        return DirectoryStore(text[len("file://"):])
    return FsspecStore(text)

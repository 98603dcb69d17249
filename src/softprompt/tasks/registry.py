"""Task lookup by name: `get_task("sst2", data_dir)`."""
from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Callable, Sequence

from softprompt.tasks.base import DataError, Task

_TASKS: dict[str, type[Task]] = {}

DATA_DIR_ENV = "SOFTPROMPT_DATA_DIR"


def register_task(*names: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: make a Task available under one or more names (case-insensitive)."""

    def wrap(cls: type[Task]) -> type[Task]:
        for name in names:
            _TASKS[name.lower()] = cls
        return cls

    return wrap


def task_names() -> list[str]:
    _import_builtin_tasks()
    return sorted(_TASKS)


def task_class(name: str) -> type[Task] | None:
    """The Task class registered under `name` (case-insensitive), or None."""
    _import_builtin_tasks()
    return _TASKS.get(name.lower())


def format_inputs(task: str | None, task_format: str | None, texts: Sequence[str]) -> list[str]:
    """Raw texts in a built-in task's input format, where that format takes one text field
    (SST-2: a review -> 'sst2 sentence: <review>\nsentiment:'); texts for tasks with several
    fields, or no known format, are taken as already formatted."""
    cls = task_class(task) if task else None
    fmt = (getattr(cls, "formats", None) or {}).get(task_format or "")
    if fmt is None:
        return list(texts)
    fields = [name for _, name, _, _ in string.Formatter().parse(fmt.template) if name]
    if len(fields) != 1:
        return list(texts)
    return [fmt.render({fields[0]: text}) for text in texts]


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """--data-dir, else $SOFTPROMPT_DATA_DIR, else ../shared/data (the team's copy)."""
    if data_dir is not None:
        path = Path(data_dir)
    elif os.environ.get(DATA_DIR_ENV):
        path = Path(os.environ[DATA_DIR_ENV])
    else:
        path = Path("../shared/data")
    if not path.is_dir():
        raise DataError(
            f"data directory {str(path)!r} does not exist; pass --data-dir or set ${DATA_DIR_ENV}"
        )
    return path


def get_task(
    name: str | Path, data_dir: str | Path | None = None, strict: bool = False, format: str | None = None,
    **options,
) -> Task:
    """Build a task by name, e.g. 'sst2', reading from `data_dir` (see resolve_data_dir), rendering
    its examples in `format` ('natural', the default, or 't5'; see tasks.base).

    `name` may also be a path: a task spec file (.yaml/.yml/.json, see tasks.custom) or an
    MRQA file (.jsonl.gz/.jsonl, see tasks.qa); these need no data directory. `options` go
    to the task's constructor, e.g. get_task("boolq", train_file="train.jsonl").
    """
    task = _build_task(name, data_dir, strict, **options)
    return task.set_format(format) if format is not None else task


def _build_task(name: str | Path, data_dir: str | Path | None, strict: bool, **options) -> Task:
    _import_builtin_tasks()
    text = str(name)
    lower = text.lower()
    if lower.endswith((".yaml", ".yml", ".json")):
        from softprompt.tasks.custom import load_custom_task

        if options:
            raise DataError(f"task spec {text!r} takes no options (got {', '.join(options)}); put them in the spec")
        return load_custom_task(text, strict=strict)
    if lower.endswith((".jsonl.gz", ".jsonl")):
        from softprompt.tasks.qa import MRQA

        return MRQA(None, strict=strict, file=text, **options)
    key = lower
    if key not in _TASKS:
        raise DataError(f"unknown task {text!r}; known tasks: {', '.join(sorted(_TASKS))}")
    cls = _TASKS[key]
    try:
        return cls(resolve_data_dir(data_dir), strict=strict, **options)
    except TypeError as err:
        if options:
            raise DataError(f"task {key!r} does not take option(s) {', '.join(options)}: {err}") from None
        raise


def _import_builtin_tasks() -> None:
    # Importing the modules runs their @register_task decorators.
    from softprompt.tasks import glue, qa, superglue  # noqa: F401

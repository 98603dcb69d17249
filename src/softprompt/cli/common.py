"""What every command shares: consoles, option help texts, model and task loading, and the
defaults of options, read from the config dataclasses (the one source of defaults)."""
from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Any, Optional

from rich.console import Console

from softprompt.core.loading import BUILTIN_MODELS

console = Console()
err_console = Console(stderr=True)

MODEL_HELP = f"Model: a built-in name ({', '.join(BUILTIN_MODELS)}), a Hugging Face id, a local folder or a .gguf file."
DATA_HELP = "Benchmark data folder (default: $SOFTPROMPT_DATA_DIR, else ../shared/data)."
DEVICE_HELP = "cpu, cuda, cuda:N, or auto (CUDA when present, bfloat16 there)."


def default_of(config_class: type, name: str) -> Any:
    """The default of a config dataclass field, so an option's default cannot drift from it."""
    for f in dataclasses.fields(config_class):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(f"{config_class.__name__} has no field {name!r}")


def load(model: str, device: str, max_input_tokens: int | None = None):
    """Load a model with a status line on stderr."""
    from softprompt.core.config import TrainConfig
    from softprompt.core.loading import load_model

    if max_input_tokens is None:
        max_input_tokens = default_of(TrainConfig, "max_input_tokens")
    with err_console.status(f"loading model {model} ..."):
        return load_model(model, device=device, max_input_tokens=max_input_tokens)


def task(name: str, data_dir: Optional[Path], strict: bool = False, **options):
    from softprompt.tasks.registry import get_task

    return get_task(name, data_dir, strict=strict, **options)


def command_line() -> str:
    """This invocation as a command line (recorded with results)."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "experiments.py":
        return "python -m softprompt.cli.experiments " + shlex.join(argv[1:])
    return shlex.join(["softprompt", *argv[1:]])

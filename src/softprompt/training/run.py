"""One prompt-tuning run from configs: resolve the "auto" settings for the model and device,
initialise the prompt, train it. The Python API and the experiments both start runs here."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from softprompt.core.config import PromptConfig, TrainConfig
from softprompt.core.model import PromptedLM
from softprompt.core.prompt import SoftPrompt
from softprompt.tasks.base import Example, Task
from softprompt.training.defaults import resolve_settings
from softprompt.training.trainer import Trainer, TrainResult


def train_prompt(
    lm: PromptedLM,
    task: Task,
    run_dir: str | Path,
    prompt: PromptConfig,
    config: TrainConfig,
    train_examples: Sequence[Example],
    dev_examples: Sequence[Example] | None,
    resume: bool = False,
    show_progress: bool = True,
    run_info: dict | None = None,
) -> TrainResult:
    """Train a prompt; every setting used, and where its value came from, lands in result.json."""
    settings = resolve_settings(lm, prompt, config, task.label_words)
    soft = SoftPrompt.initialise(lm, settings.prompt, task.label_words, seed=settings.train.seed)
    recorded = {**settings.to_dict(), "model": lm.model_id, "device": str(lm.device), "task": task.name}
    trainer = Trainer(lm, soft, task, train_examples, dev_examples, settings.train, run_dir,
                      init_name=settings.prompt.init or "unknown", show_progress=show_progress, settings=recorded,
                      run_info=run_info)
    return trainer.train(resume=resume)

"""The Python API, mirroring the command line. Prompt-tune in a few lines:

    import softprompt as sp

    lm = sp.load_model("smollm2")                       # frozen; only prompts train
    task = sp.get_task("sst2", data_dir="../shared/data")
    result = sp.train(lm, task, "runs/sst2")           # settings fit to the model and device
    prompt = sp.load_prompt(result.prompt_path, lm)
    print(sp.classify(lm, prompt, ["a gripping, funny film"]))
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from softprompt.core.config import ConfigError, PromptConfig, TrainConfig
from softprompt.core.model import PromptedLM
from softprompt.core.prompt_file import SavedPrompt
from softprompt.core.scoring import best_option
from softprompt.evaluation.evaluator import EvalResult, evaluate
from softprompt.progress import ProgressReporter
from softprompt.tasks.base import Example, Task
from softprompt.tasks.registry import format_inputs
from softprompt.training.run import train_prompt
from softprompt.training.trainer import TrainResult


def train(
    lm: PromptedLM,
    task: Task,
    run_dir: str | Path,
    prompt: PromptConfig | None = None,
    config: TrainConfig | None = None,
    resume: bool = False,
    show_progress: bool = True,
    max_train_examples: int | None = None,
    train_split: str = "train",
    dev_split: str | None = "dev",
    data: tuple[list[Example], list[Example]] | None = None,
    run_info: dict | None = None,
) -> TrainResult:
    """Prompt-tune on a task's train split with early stopping on its dev split
    (dev_split None: no evaluation, the last prompt is kept). `data` passes splits already
    loaded by load_splits; `run_info` (how the run was started) is recorded in result.json.
    Settings left None ("auto") are chosen for the model and device
    (training.defaults) and recorded, with their sources, in the run's result.json."""
    train_examples, dev_examples = data or load_splits(task, train_split, dev_split, max_train_examples)
    return train_prompt(lm, task, run_dir, prompt or PromptConfig(), config or TrainConfig(), train_examples,
                        dev_examples, resume=resume, show_progress=show_progress, run_info=run_info)


def load_splits(
    task: Task, train_split: str = "train", dev_split: str | None = "dev", max_train_examples: int | None = None
) -> tuple[list[Example], list[Example]]:
    """(train examples, dev examples) of a task; dev is empty when dev_split is None."""
    return task.load(train_split)[:max_train_examples], (task.load(dev_split) if dev_split else [])


def evaluate_prompt(
    lm: PromptedLM,
    task: Task,
    prompt: SavedPrompt | None,
    split: str = "dev",
    batch_size: int = 32,
    max_examples: int | None = None,
    show_progress: bool = False,
) -> EvalResult:
    """Score a saved prompt (or no prompt) on one split of a task (show_progress: a bar on a
    terminal, plain lines every 30 s otherwise). A prompt is scored as it was trained: the
    task renders the format the prompt file records and inputs are cut to its max_input_tokens."""
    if prompt is not None:
        task = for_prompt(task, prompt)
    examples = task.load(split)[:max_examples]
    with ProgressReporter(f"eval {task.name}/{split}", len(examples), unit="examples",
                          enabled=show_progress) as reporter:
        return evaluate(lm, task, examples, None if prompt is None else prompt.tensor, batch_size,
                        progress=reporter.advance,
                        max_input_tokens=None if prompt is None else prompt.metadata.input_tokens)


def for_prompt(task: Task, prompt: SavedPrompt) -> Task:
    """The task rendering the format `prompt` was trained with (a copy; the task itself is kept)."""
    fmt = prompt.metadata.task_format
    return task.with_format(fmt) if task.formats and fmt is not None else task


def prompt_inputs(prompt: SavedPrompt, texts: Sequence[str]) -> list[str]:
    """Raw texts in the input format the prompt was trained with, where that format takes one
    text field (tasks.registry.format_inputs); other texts are taken as already formatted."""
    return format_inputs(prompt.metadata.task, prompt.metadata.task_format, texts)


def classify(
    lm: PromptedLM,
    prompt: SavedPrompt,
    inputs: Sequence[str],
    labels: Sequence[str] | None = None,
    raw: bool = False,
) -> list[dict]:
    """Label each input by rank classification over `labels` (default: the prompt's label words).
    Inputs are put in the prompt's task format (prompt_inputs) unless raw."""
    labels = list(labels or prompt.metadata.label_words or [])
    if not labels:
        raise ConfigError("labels: none given and the prompt file records none")
    texts = list(inputs) if raw else prompt_inputs(prompt, inputs)
    scores = lm.score_options(texts, [labels] * len(texts), prompt.tensor,
                             max_input_tokens=prompt.metadata.input_tokens)
    return [
        {"label": labels[best_option(s)], "scores": dict(zip(labels, s))}
        for s in scores
    ]


def generate(lm: PromptedLM, prompt: SavedPrompt | None, inputs: Sequence[str], max_new_tokens: int = 32,
             raw: bool = False) -> list[str]:
    """Greedy generation with the prompt prepended (inputs in its task format unless raw)."""
    if prompt is None:
        return lm.generate(list(inputs), None, max_new_tokens=max_new_tokens)
    texts = list(inputs) if raw else prompt_inputs(prompt, inputs)
    return lm.generate(texts, prompt.tensor, max_new_tokens=max_new_tokens,
                       max_input_tokens=prompt.metadata.input_tokens)

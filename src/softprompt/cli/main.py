"""The `softprompt` command line: train, eval, predict, inspect, export, import (and serve).

Errors a user can fix (bad arguments, missing files, unknown models, malformed data rows)
print one line naming the culprit and exit with status 2; no traceback.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, List, Optional, cast

import typer
from rich.table import Table

from softprompt.cli.common import DATA_HELP, DEVICE_HELP, MODEL_HELP, console, default_of, err_console
from softprompt.cli.common import load as _load
from softprompt.cli.common import task as _task
from softprompt.core.config import INIT_METHODS, ConfigError, PromptConfig, TrainConfig
from softprompt.core.loading import DEFAULT_MODEL, needs_conversion
from softprompt.errors import SoftPromptError
from softprompt.training.defaults import LR_PER_EMBEDDING_STD

app = typer.Typer(
    name="softprompt",
    help="Prompt tuning (Lester et al. 2021): train small soft prompts for a frozen language model, "
    "evaluate, inspect and serve them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
@app.command()
def train(
    task: str = typer.Option(..., "--task", "-t", help="Task name (see `softprompt tasks`) or a task spec file (.yaml/.json)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: prompt.safetensors, checkpoint.pt, metrics.jsonl, result.json."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_HELP),
    prompt_length: Optional[int] = typer.Option(None, "--prompt-length", "-p", help="Number of virtual tokens p (default: 20 on a CPU, 100 on CUDA as in the paper)."),
    init: Optional[str] = typer.Option(default_of(PromptConfig, "init"), "--init", help=f"Initialisation: {', '.join(INIT_METHODS)} (default: class-label where the task has label words, else sampled-vocab)."),
    init_text: Optional[str] = typer.Option(None, "--init-text", help="String embedded by --init text."),
    init_file: Optional[Path] = typer.Option(None, "--init-file", help="Prompt file to start from (--init file)."),
    init_range: Optional[float] = typer.Option(None, "--init-range", help="random-uniform range r (default: matched to the vocabulary's spread; paper: 0.5)."),
    optimizer: str = typer.Option(default_of(TrainConfig, "optimizer"), "--optimizer", help="adafactor (paper) or adam."),
    lr: Optional[float] = typer.Option(None, "--lr", help=f"Learning rate (default: {LR_PER_EMBEDDING_STD} x the model's embedding std, see reports/lr_rule.md; the paper's 0.3 suits T5's embeddings)."),
    weight_decay: float = typer.Option(default_of(TrainConfig, "weight_decay"), "--weight-decay"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Examples per micro-batch (default: 8 on a CPU, 32 on CUDA)."),
    grad_accum: int = typer.Option(default_of(TrainConfig, "grad_accum_steps"), "--grad-accum", help="Micro-batches per update."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer updates (default: 300 on a CPU, 30,000 on CUDA)."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Evaluate on dev (and checkpoint) every N updates (default: 100 on a CPU, 1000 on CUDA)."),
    eval_subset: Optional[int] = typer.Option(None, "--eval-subset", help="Evaluations during training use a seeded subset of N dev examples; the best prompt is then scored on the whole dev set (default: 200 on a CPU, all on CUDA)."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Stop after N evaluations without dev improvement."),
    max_eval: Optional[int] = typer.Option(None, "--max-eval", help="Evaluate on the first N dev examples only."),
    max_train: Optional[int] = typer.Option(None, "--max-train", help="Train on the first N training examples only."),
    max_input_tokens: int = typer.Option(default_of(TrainConfig, "max_input_tokens"), "--max-input-tokens", help="Longer inputs keep their last N tokens."),
    seed: int = typer.Option(default_of(TrainConfig, "seed"), "--seed"),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", help="Also checkpoint every N updates (default: at each evaluation)."),
    activation_checkpointing: int = typer.Option(default_of(TrainConfig, "activation_checkpointing"), "--activation-checkpointing", help="Recompute every N-th layer's activations in the backward pass (1: all, 2: half; 0: off): less memory, more compute."),
    group_by_length: bool = typer.Option(default_of(TrainConfig, "group_by_length"), "--group-by-length/--random-batches", help="Batches of rows of similar length (fewer tokens computed: benchmarks/padding.md) or uniformly random batches (the default: they scored higher in paired runs, reports/results.md)."),
    bands: Optional[bool] = typer.Option(None, "--length-bands/--no-length-bands", help="Compute each batch in bands of rows of similar length, one pass each (the same loss and gradient as one padded pass, fewer tokens computed; default: on a CPU, off on CUDA; benchmarks/length_bands.md)."),
    objective: str = typer.Option(default_of(TrainConfig, "objective"), "--objective", help="lm: the paper's text-to-text loss on the gold target; choices: cross-entropy of the gold option among the example's options, scored as evaluation scores them (classification tasks; one row per option)."),
    lr_schedule: str = typer.Option(default_of(TrainConfig, "lr_schedule"), "--lr-schedule", help="constant (the paper's) or linear: the lr falls linearly to 0 over --steps."),
    reparam: str = typer.Option(default_of(TrainConfig, "reparameterization"), "--reparam", help="none (the paper's: P trains directly) or residual: P trains through a shared bottleneck network with a residual connection (Residual Prompt Tuning), dropped after training; the prompt file is the same kind."),
    reparam_hidden: int = typer.Option(default_of(TrainConfig, "reparam_hidden"), "--reparam-hidden", help="The residual network's bottleneck width."),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run from its last checkpoint, or a finished one for more updates (with a larger --steps)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in a run folder that already holds a run."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP + " The device also sets the default budget (CPU: 300 updates of batch 8, p = 20; CUDA: the paper's)."),
    strict: bool = typer.Option(False, "--strict", help="Fail on malformed data rows instead of skipping them."),
    task_format: str = typer.Option("auto", "--format", help="Task input format: natural (a question and an answer "
                                    "cue; decoder-only models), t5 (T5's; encoder-decoder models) or auto (by the model)."),
    train_split: str = typer.Option("train", "--train-split", help="Split to train on (e.g. fewglue32-train)."),
    dev_split: str = typer.Option("dev", "--dev-split", help="Split for evaluation and early stopping; 'none' to skip."),
    train_file: Optional[Path] = typer.Option(None, "--train-file", help="Read the train split from this file (e.g. BoolQ's train.jsonl)."),
    neighbours: int = typer.Option(3, "--report-rows", help="Prompt rows whose nearest tokens the report shows."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    fsdp: bool = typer.Option(False, "--fsdp", help="Under torchrun: shard the frozen model's layers over the "
                              "processes (torch FSDP2 fully_shard), for models too large for one device."),
) -> None:
    """Prompt-tune a frozen model on a task, evaluate on dev, save the best prompt and report.
    Under torchrun or accelerate launch the processes share every batch (README: many GPUs)."""
    from softprompt.api import load_splits
    from softprompt.api import train as run_training
    from softprompt.environment import machine_info, utc_now
    from softprompt.tasks.base import format_for
    from softprompt.training import distributed
    from softprompt.training.checkpoint import ResumeMismatch, check_run_dir

    started = utc_now()
    group, device = distributed.init_from_env(device)
    group.run_on_main(lambda: check_run_dir(out, resume=resume, overwrite=overwrite))
    # strings from the command line: the config dataclasses validate them (a ConfigError names the field)
    prompt_cfg = PromptConfig(length=prompt_length, init=cast(Any, init), init_text=init_text,
                              init_file=str(init_file) if init_file else None, init_range=init_range)
    train_cfg = TrainConfig(optimizer=cast(Any, optimizer), learning_rate=lr, weight_decay=weight_decay, batch_size=batch_size,
                            grad_accum_steps=grad_accum, max_steps=steps, eval_every=eval_every,
                            early_stopping_patience=patience, max_eval_examples=max_eval, seed=seed,
                            intermediate_eval_examples=eval_subset,
                            max_input_tokens=max_input_tokens, checkpoint_every=checkpoint_every,
                            activation_checkpointing=activation_checkpointing, group_by_length=group_by_length,
                            length_bands=bands, objective=cast(Any, objective), lr_schedule=cast(Any, lr_schedule),
                            reparameterization=cast(Any, reparam), reparam_hidden=reparam_hidden)
    options = {"train_file": train_file} if train_file else {}
    task_obj = _task(task, data_dir, strict, format=None if task_format == "auto" else task_format, **options)
    dev = None if dev_split.lower() == "none" else dev_split
    data = load_splits(task_obj, train_split, dev, max_train)  # fail fast on data, before the model loads
    converted = needs_conversion(model)
    start = time.perf_counter()
    lm = _load(model, device, max_input_tokens)
    if fsdp:
        distributed.shard_frozen_model(lm, group)
    load_seconds = time.perf_counter() - start
    if task_format == "auto" and task_obj.format != format_for(lm.is_encoder_decoder) and task_obj.formats:
        task_obj.set_format(format_for(lm.is_encoder_decoder))
        data = load_splits(task_obj, train_split, dev, max_train)
    run_info = {"command": " ".join(["softprompt", *sys.argv[1:]]), "started": started,
                "model_load_seconds": round(load_seconds, 1), "model_converted": converted, "machine": machine_info(),
                "processes": group.world_size, "fsdp": fsdp}
    try:
        result = run_training(lm, task_obj, out, prompt_cfg, train_cfg, resume=resume,
                              show_progress=not quiet and group.is_main, data=data, run_info=run_info)
    except ResumeMismatch as err:
        raise SoftPromptError(f"{err}{_restoring_flag(err.setting, err.saved)}") from err
    if group.is_main:
        _report(lm, task_obj, result, load_seconds, neighbours)
    distributed.shutdown()


# The train flag that sets a TrainConfig field a resume refused back to the checkpoint's value
# (a switch: its on and off forms).
_TRAIN_FLAGS = {"batch_size": "--batch-size", "grad_accum_steps": "--grad-accum", "seed": "--seed",
                "optimizer": "--optimizer", "learning_rate": "--lr", "objective": "--objective",
                "lr_schedule": "--lr-schedule", "reparameterization": "--reparam", "reparam_hidden": "--reparam-hidden",
                "max_steps": "--steps", "eval_every": "--eval-every", "max_eval_examples": "--max-eval",
                "intermediate_eval_examples": "--eval-subset", "early_stopping_patience": "--patience"}
_TRAIN_SWITCHES = {"length_bands": ("--length-bands", "--no-length-bands"),
                   "group_by_length": ("--group-by-length", "--random-batches")}


def _restoring_flag(setting: str, saved: object) -> str:
    if setting in _TRAIN_SWITCHES:
        return f" (pass {_TRAIN_SWITCHES[setting][0 if saved else 1]})"
    if setting in _TRAIN_FLAGS and saved is not None:
        return f" (pass {_TRAIN_FLAGS[setting]} {saved})"
    if setting in _TRAIN_FLAGS:
        return f" (leave out {_TRAIN_FLAGS[setting]})"
    return ""


# (train setting, label, the paper's value): shown in the report when a run departs from the paper
_RECIPE_SETTINGS = (("lr_schedule", "lr schedule", "constant"), ("reparameterization", "reparameterization", "none"),
                    ("optimizer", "optimizer", "adafactor"), ("objective", "objective", "lm"))


def _report(lm, task, result, load_seconds: float, n_rows: int) -> None:
    from softprompt.core.prompt_file import read_prompt
    from softprompt.evaluation.neighbours import nearest_tokens

    saved = read_prompt(result.prompt_path)
    metric = task.primary_metric
    table = Table(title=f"softprompt: {task.name} on {lm.model_id}", show_header=False)
    before = (result.initial_metrics or {}).get(metric)
    best = (result.best_metrics or {}).get(metric)
    final = (result.final_metrics or {}).get(metric)
    table.add_row(f"dev {metric} before training", "-" if before is None else f"{before:.2f}")
    if final is not None:
        table.add_row(f"dev {metric} after training (best, whole dev set)", f"{final:.2f} (step {result.best_step})")
        table.add_row("  on the dev subset used for selection", f"{best:.2f}")
    else:
        table.add_row(f"dev {metric} after training (best)", "-" if best is None else f"{best:.2f} (step {result.best_step})")
    table.add_row("updates", f"{result.steps}" + (" (early stop)" if result.stopped_early else ""))
    train = (result.settings or {}).get("train", {})
    sources = (result.settings or {}).get("sources", {})
    if train:
        table.add_row("settings", f"lr {train['learning_rate']:g} ({sources.get('learning_rate', 'user')}), "
                      f"batch {train['batch_size']}, prompt length {saved.length}"
                      + "".join(f", {label} {train[key]}" for key, label, paper in _RECIPE_SETTINGS
                                if train.get(key, paper) != paper))
    table.add_row("training + eval time", f"{result.seconds:.1f} s (model load {load_seconds:.1f} s)")
    table.add_row("prompt", f"{saved.length} x {saved.tensor.shape[1]} = {saved.tensor.numel():,} parameters")
    table.add_row("prompt file", f"{result.prompt_path} ({result.prompt_path.stat().st_size / 1024:.1f} KiB)")
    for warning in result.warnings or []:
        table.add_row("warning", warning)
    for row, tokens in enumerate(nearest_tokens(lm, saved.tensor[:n_rows], k=5)):
        table.add_row(f"row {row} nearest tokens", ", ".join(repr(t) for t, _ in tokens))
    console.print(table)


@app.command("eval")
def eval_command(
    prompt: Optional[Path] = typer.Argument(None, help="Prompt file (or a folder with --suite)."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task (default: the one recorded in the prompt)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP + " Default: the model the prompt was trained on."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_HELP),
    split: str = typer.Option("dev", "--split", help="train, dev or test."),
    batch_size: int = typer.Option(32, "--batch-size", "-b"),
    max_examples: Optional[int] = typer.Option(None, "--max-examples"),
    no_prompt: bool = typer.Option(False, "--no-prompt", help="Evaluate the bare model (no soft prompt)."),
    task_format: Optional[str] = typer.Option(None, "--format", help="Task input format for --no-prompt: natural or "
                                              "t5 (default: by the model). A prompt is scored in the format it was trained with."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Evaluate every prompt in a folder on a suite (e.g. superglue)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON here."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Evaluate a prompt on a task split by the task's official metric."""
    from softprompt.api import evaluate_prompt
    from softprompt.core.prompt_file import load_prompt, read_prompt

    if suite is not None:
        from softprompt.cli.suite import run_suite_command

        run_suite_command(suite, prompt, model or DEFAULT_MODEL, data_dir, split, batch_size, max_examples, json_out, device, console)
        return
    if prompt is None and not no_prompt:
        raise SoftPromptError("give a PROMPT file, or --no-prompt to evaluate the bare model")
    saved_meta = read_prompt(prompt) if prompt is not None else None
    task_name = task or (saved_meta.metadata.task if saved_meta else None)
    if not task_name:
        raise SoftPromptError("--task is required: the prompt file records no task")
    task_obj = _task(task_name, data_dir, format=task_format)
    lm = _load(model or (saved_meta.metadata.model_id if saved_meta else DEFAULT_MODEL), device)
    if task_format is None and saved_meta is None and task_obj.formats:
        from softprompt.tasks.base import format_for

        task_obj.set_format(format_for(lm.is_encoder_decoder))
    saved = load_prompt(prompt, lm) if prompt is not None else None
    result = evaluate_prompt(lm, task_obj, saved, split, batch_size, max_examples, show_progress=not quiet)
    table = Table(title=f"{task_obj.name} / {split} ({len(result.predictions)} examples, {result.seconds:.1f} s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.metrics.items():
        table.add_row(name, f"{value:.2f}")
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps({"task": task_obj.name, "split": split, "metrics": result.metrics,
                                        "examples": len(result.predictions), "seconds": result.seconds}, indent=2))


@app.command()
def predict(
    prompt: Path = typer.Argument(..., help="Prompt file."),
    text: Optional[List[str]] = typer.Argument(None, help="Input texts (default: one per line on stdin)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP + " Default: the model the prompt was trained on."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated labels (default: the prompt's label words)."),
    generate: bool = typer.Option(False, "--generate", help="Generate text instead of choosing a label."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens"),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
    json_lines: bool = typer.Option(False, "--json", help="One JSON object per input."),
    raw: bool = typer.Option(False, "--raw", help="Give the texts to the model as they are (default: put each in "
                             "the input format the prompt was trained with, where that format takes one text)."),
) -> None:
    """Run a prompt on raw text: label (rank classification) or generation out."""
    from softprompt.api import classify
    from softprompt.api import generate as run_generate
    from softprompt.core.prompt_file import load_prompt, read_prompt

    inputs = list(text or [ln.rstrip("\n") for ln in sys.stdin if ln.strip()])
    if not inputs:
        raise SoftPromptError("no input text: pass it as arguments or on stdin")
    meta = read_prompt(prompt).metadata
    label_list = [s.strip() for s in labels.split(",")] if labels else meta.label_words
    if not generate and not label_list:
        raise SoftPromptError(f"{prompt} records no label words: pass --labels a,b or use --generate")
    lm = _load(model or meta.model_id, device)
    saved = load_prompt(prompt, lm)
    if generate:
        for inp, out in zip(inputs, run_generate(lm, saved, inputs, max_new_tokens, raw=raw)):
            console.print_json(json.dumps({"input": inp, "output": out})) if json_lines else console.print(out, markup=False)
    else:
        for inp, res in zip(inputs, classify(lm, saved, inputs, label_list, raw=raw)):
            if json_lines:
                console.print_json(json.dumps({"input": inp, **res}))
            else:
                console.print(res["label"], markup=False)


@app.command()
def inspect(
    prompt: Path = typer.Argument(..., help="Prompt file."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP + " Default: the prompt's own model."),
    k: int = typer.Option(5, "--k", help="Nearest vocabulary tokens per prompt row."),
    rows: Optional[int] = typer.Option(None, "--rows", help="Show only the first N rows."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
    no_neighbours: bool = typer.Option(False, "--metadata-only", help="Print metadata only (no model needed)."),
) -> None:
    """Print a prompt's metadata and each row's nearest vocabulary tokens (cosine similarity)."""
    from softprompt.core.prompt_file import load_prompt, read_prompt
    from softprompt.evaluation.neighbours import nearest_tokens

    saved = read_prompt(prompt)
    meta = Table(title=str(prompt), show_header=False)
    for key, value in saved.metadata.to_dict().items():
        meta.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    meta.add_row("norm (mean row L2)", f"{saved.tensor.norm(dim=1).mean():.4f}")
    console.print(meta)
    if no_neighbours:
        return
    lm = _load(model or saved.metadata.model_id, device)
    saved = load_prompt(prompt, lm)
    table = Table(title=f"nearest tokens (cosine), k={k}")
    table.add_column("row", justify="right")
    table.add_column("tokens")
    tensor = saved.tensor if rows is None else saved.tensor[:rows]
    for i, tokens in enumerate(nearest_tokens(lm, tensor, k=k)):
        table.add_row(str(i), "  ".join(f"{t!r} {s:.2f}" for t, s in tokens))
    console.print(table)


@app.command()
def export(
    prompt: Path = typer.Argument(..., help="Prompt file."),
    out: Path = typer.Argument(..., help="Output PEFT adapter folder."),
    task_type: str = typer.Option("CAUSAL_LM", "--task-type", help="PEFT task type: CAUSAL_LM or SEQ_2_SEQ_LM."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The prompt's model (default: the one recorded in the file)."),
    fold_bos: bool = typer.Option(False, "--fold-bos", help="For models with a BOS token: export BOS as virtual token 0 (PEFT inputs then need add_special_tokens=False)."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
) -> None:
    """Export a prompt as a PEFT prompt-tuning adapter folder (checked against its model)."""
    from softprompt.core.prompt_file import export_peft, read_prompt

    if task_type not in ("CAUSAL_LM", "SEQ_2_SEQ_LM"):
        raise SoftPromptError(f"--task-type must be CAUSAL_LM or SEQ_2_SEQ_LM, got {task_type!r}")
    saved = read_prompt(prompt)
    export_peft(saved, out, _load(model or saved.metadata.model_id, device), task_type, fold_bos=fold_bos)
    console.print(f"wrote PEFT adapter {out}")


@app.command("import")
def import_command(
    adapter: Path = typer.Argument(..., help="PEFT prompt-tuning adapter folder."),
    out: Path = typer.Argument(..., help="Output prompt file (.safetensors)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model the adapter belongs to (needed for adapters not exported by softprompt)."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
) -> None:
    """Import a PEFT prompt-tuning adapter as a softprompt prompt file."""
    from softprompt.core.prompt_file import import_peft, save_prompt

    lm = _load(model, device) if model else None
    saved = import_peft(adapter, lm)
    save_prompt(out, saved.tensor, saved.metadata)
    console.print(f"wrote {out} ({saved.length} x {saved.tensor.shape[1]})")


@app.command()
def tasks() -> None:
    """List the built-in tasks."""
    from softprompt.tasks.registry import task_names

    for name in task_names():
        console.print(name)


def _register_subcommands() -> None:
    from softprompt.cli.experiments import experiments_app
    from softprompt.cli.serve import client_app, serve_command

    app.command("serve")(serve_command)
    app.add_typer(client_app, name="client")
    app.add_typer(experiments_app, name="experiment")


_register_subcommands()


def _click_exceptions() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(abort, usage-error) classes: typer 0.29+ raises from its vendored click copy."""
    import click

    aborts: tuple[type[BaseException], ...] = (click.exceptions.Abort, typer.Abort)
    errors: tuple[type[BaseException], ...] = (click.exceptions.ClickException,)
    try:
        from typer._click import exceptions as vendored

        errors += (vendored.ClickException,)
    except ImportError:
        pass
    return aborts, errors


def main() -> None:
    """Entry point: run the app; user-facing errors become one line on stderr, exit 2."""
    aborts, click_errors = _click_exceptions()
    try:
        code = app(standalone_mode=False)
    except (SoftPromptError, ConfigError) as err:
        err_console.print(f"[red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except aborts:
        err_console.print("aborted")
        sys.exit(130)
    except click_errors as err:
        usage_error = cast(Any, err)  # click's or typer's vendored ClickException
        usage_error.show()
        sys.exit(usage_error.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted: resume a training run with --resume")
        sys.exit(130)
    except FileNotFoundError as err:
        err_console.print(f"[red]error:[/] file not found: {err.filename}", highlight=False)
        sys.exit(2)
    if isinstance(code, int) and code != 0:  # typer.Exit(n) is returned, not raised
        sys.exit(code)


if __name__ == "__main__":
    main()

"""`softprompt experiment ...`: the paper's comparisons.

    model-tune     full fine-tuning baseline (every weight of a copy of the model)
    prompt-design  hand-written prompt, zero- or k-shot, no training
    templates      print the hand-written prompts
    ensemble       N prompt files of one task, scored in shared batches, majority vote
    transfer       a prompt file evaluated zero-shot on another task (qqp->mrpc, squad->bioasq, ...)
    report-run     run the report's methods on one task (appends to reports/results.json)
    report-build   regenerate reports/results.md from reports/results.json
    ablate         prompt length x init grid (the paper's Figure 3)
    interpret      nearest tokens and row similarity of trained prompts
    prompt-manifest  the SHA-256 of every prompt file the records cite (reports/prompts.json)

Also runnable without registration: `python -m softprompt.cli.experiments ...`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence, cast

import typer
from rich.table import Table

from softprompt.cli.common import DATA_HELP, MODEL_HELP, console, err_console
from softprompt.cli.common import command_line as _command
from softprompt.cli.common import load as _load
from softprompt.cli.common import task as _task
from softprompt.core.loading import DEFAULT_MODEL
from softprompt.errors import SoftPromptError

experiments_app = typer.Typer(
    name="experiment",
    help="The paper's comparisons: model tuning, prompt design, prompt ensembles, domain transfer, the report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
def _metrics_table(title: str, rows: Sequence[tuple[str, dict | None]]) -> Table:
    names = list(dict.fromkeys(k for _, m in rows for k in (m or {})))
    table = Table(title=title)
    table.add_column("")
    for n in names:
        table.add_column(n, justify="right")
    for label, m in rows:
        table.add_row(label, *[f"{m[n]:.2f}" if m and n in m else "-" for n in names])
    return table


def _write_json(path: Optional[Path], payload: dict) -> None:
    if path is not None:
        from softprompt.fileio import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2, default=str) + "\n"))
        console.print(f"wrote {path}", markup=False)


@experiments_app.command("model-tune")
def model_tune(
    task: str = typer.Option(..., "--task", "-t", help="Task name."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder for metrics.jsonl and result.json (the model is not saved)."),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw (default) or adafactor."),
    lr: float = typer.Option(5e-5, "--lr", help="Constant learning rate (default 5e-5; the paper: 1e-3 Adafactor for T5)."),
    batch_size: int = typer.Option(8, "--batch-size", "-b"),
    steps: int = typer.Option(100, "--steps"),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Also evaluate every N steps (default: only at the end)."),
    max_eval: Optional[int] = typer.Option(None, "--max-eval", help="Evaluate on the first N dev examples."),
    max_train: Optional[int] = typer.Option(None, "--max-train"),
    max_input_tokens: int = typer.Option(256, "--max-input-tokens"),
    seed: int = typer.Option(0, "--seed"),
    bands: Optional[bool] = typer.Option(None, "--length-bands/--no-length-bands", help="Compute each batch in bands "
                                         "of rows of similar length (the same loss and gradient as one padded pass; "
                                         "default: on a CPU, off on CUDA)."),
    device: str = typer.Option("cpu", "--device"),
    transfer_to: Optional[str] = typer.Option(None, "--transfer-to", help="Then score the tuned model zero-shot on this task "
                                              "(domain transfer, e.g. mrpc after qqp); --json writes a transfer record."),
    transfer_max: Optional[int] = typer.Option(None, "--transfer-max-examples", help="Score on the first N target examples."),
    json_out: Optional[Path] = typer.Option(None, "--json"),
) -> None:
    """Model tuning: fine-tune every weight (of a private copy) on the task's text-to-text loss."""
    from softprompt.api import load_splits
    from softprompt.experiments.model_tuning import ModelTuningConfig, tune_model
    from softprompt.experiments.transfer import check_compatible_tasks, model_tuning_transfer

    config = ModelTuningConfig(optimizer=cast(Any, optimizer), learning_rate=lr, batch_size=batch_size, max_steps=steps,
                               eval_every=eval_every, max_eval_examples=max_eval, max_input_tokens=max_input_tokens,
                               seed=seed, length_bands=bands)
    task_obj = _task(task, data_dir)
    train, dev = load_splits(task_obj, "train", "dev", max_train)
    if transfer_to is not None:
        target = _task(transfer_to, data_dir)
        check_compatible_tasks(list(task_obj.label_words or []), task_obj.name, target,  # before the model loads
                               "the model would be tuned")
        lm = _load(model, device, max_input_tokens)
        moved = model_tuning_transfer(lm, task_obj, target, train, dev, config, max_examples=transfer_max,
                                      run_dir=out, show_progress=True)
        console.print(_metrics_table(
            f"model tuning {moved.source} -> {moved.target} (prefix {moved.prefix!r}), {moved.examples} examples",
            [("zero-shot", moved.metrics), ("source dev", (moved.source_dev_metric or {}).get("metrics"))]))
        _write_json(json_out, {**moved.to_dict(), "model": model, "command": _command()})
        return
    lm = _load(model, device, max_input_tokens)
    result = tune_model(lm, task_obj, train, dev, config, run_dir=out, show_progress=True)
    console.print(_metrics_table(
        f"model tuning: {task_obj.name}, {steps} steps x {batch_size}, {result.train_seconds:.0f} s train",
        [("final", result.final_metrics), (f"best (step {result.best_step})", result.best_metrics)]))
    _write_json(json_out, {**result.to_dict(), "model": model, "command": _command()})


@experiments_app.command("prompt-design")
def prompt_design(
    task: str = typer.Option(..., "--task", "-t", help="Task name (one with a hand-written prompt: see `templates`)."),
    shots: int = typer.Option(0, "--shots", "-k", help="Demonstrations from the train split placed before each input."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_HELP),
    split: str = typer.Option("dev", "--split"),
    max_examples: Optional[int] = typer.Option(None, "--max-examples"),
    batch_size: int = typer.Option(16, "--batch-size", "-b"),
    seed: int = typer.Option(0, "--seed", help="Seeds the choice of demonstrations."),
    max_input_tokens: int = typer.Option(512, "--max-input-tokens", help="Longer inputs keep their last N tokens."),
    device: str = typer.Option("cpu", "--device"),
    json_out: Optional[Path] = typer.Option(None, "--json"),
) -> None:
    """Prompt design: score the task's hand-written prompt (zero- or k-shot), no training."""
    from softprompt.experiments.prompt_design import (
        evaluate_prompt_design,
        template_for,
    )

    task_obj = _task(task, data_dir)
    template_for(task_obj)
    examples = task_obj.load(split)[:max_examples]
    train = task_obj.load("train") if shots else None
    lm = _load(model, device, max_input_tokens)
    result = evaluate_prompt_design(lm, task_obj, examples, shots, train, seed, batch_size)
    console.print(_metrics_table(
        f"prompt design: {task_obj.name} / {split}, {shots}-shot, {len(examples)} examples, {result.seconds:.1f} s",
        [("hand-written prompt", result.metrics)]))
    _write_json(json_out, {"task": task_obj.name, "split": split, "examples": len(examples), "metrics": result.metrics,
                           "seconds": result.seconds, **result.extra, "model": model, "command": _command()})


@experiments_app.command("templates")
def templates() -> None:
    """Print the hand-written prompts of prompt design (Markdown)."""
    from softprompt.experiments.prompt_design import describe_templates

    console.print(describe_templates(), markup=False, highlight=False)


@experiments_app.command("ensemble")
def ensemble(
    prompts: List[Path] = typer.Argument(..., help="Prompt files of one task."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task (default: the one the prompts record)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_HELP),
    split: str = typer.Option("dev", "--split"),
    max_examples: Optional[int] = typer.Option(None, "--max-examples"),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Examples per batch (the batch holds batch-size x N rows)."),
    combine: str = typer.Option("vote", "--combine", help="vote (majority, ties by summed log-likelihood) or sum."),
    max_input_tokens: int = typer.Option(256, "--max-input-tokens"),
    device: str = typer.Option("cpu", "--device"),
    json_out: Optional[Path] = typer.Option(None, "--json"),
    compare_separate: bool = typer.Option(False, "--compare-separate", help="Also time N separate passes (one prompt each) and check they give the same scores."),
) -> None:
    """Prompt ensemble: N prompts scored in shared batches; average, best and majority-vote metrics."""
    from softprompt.core.prompt_file import read_prompt
    from softprompt.evaluation.ensemble import evaluate_ensemble_files

    recorded = {read_prompt(p).metadata.task for p in prompts}
    task_name = task or (recorded.pop() if len(recorded) == 1 else None)
    if not task_name:
        raise SoftPromptError(f"--task is required: the prompts record task(s) {sorted(map(str, recorded))}")
    if combine not in ("vote", "sum"):
        raise SoftPromptError(f"--combine must be vote or sum, got {combine!r}")
    task_obj = _task(task_name, data_dir)
    task_obj.load(split)
    lm = _load(model, device, max_input_tokens)
    result = evaluate_ensemble_files(lm, task_obj, [str(p) for p in prompts], split, max_examples, batch_size,
                                     cast(Any, combine), compare_separate=compare_separate)
    rows = [(str(p), m) for p, m in zip(prompts, result.per_prompt)]
    rows += [("average", result.average), (f"best ({prompts[result.best_index]})", result.best),
             (f"ensemble ({combine})", result.ensemble)]
    console.print(_metrics_table(f"prompt ensemble: {task_obj.name} / {split}, {len(result.predictions)} examples, "
                                 f"{len(prompts)} prompts in {result.seconds:.1f} s", rows))
    if result.separate_seconds is not None:
        console.print(f"{len(prompts)} separate passes: {result.separate_seconds:.1f} s "
                      f"(shared pass {result.seconds:.1f} s); largest score difference {result.separate_max_diff:.1e}")
    _write_json(json_out, {**result.to_dict(), "split": split, "model": model, "command": _command()})


@experiments_app.command("transfer")
def transfer(
    prompt: Path = typer.Argument(..., help="Prompt file trained on the source task."),
    target: str = typer.Option(..., "--target", help="Task to evaluate on zero-shot (e.g. mrpc for a qqp prompt)."),
    prefix: str = typer.Option("source", "--prefix", help="Task prefix of the target inputs: source (as trained), target, or none."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_HELP),
    split: str = typer.Option("dev", "--split"),
    max_examples: Optional[int] = typer.Option(None, "--max-examples"),
    batch_size: int = typer.Option(16, "--batch-size", "-b"),
    max_input_tokens: int = typer.Option(256, "--max-input-tokens"),
    device: str = typer.Option("cpu", "--device"),
    json_out: Optional[Path] = typer.Option(None, "--json"),
) -> None:
    """Domain transfer: evaluate a prompt zero-shot on another task with the same format."""
    from softprompt.core.prompt_file import read_prompt
    from softprompt.experiments.transfer import (
        check_compatible_tasks,
        evaluate_transfer,
    )

    if prefix not in ("source", "target", "none"):
        raise SoftPromptError(f"--prefix must be source, target or none, got {prefix!r}")
    meta = read_prompt(prompt).metadata
    task_obj = _task(target, data_dir)
    check_compatible_tasks(meta.label_words, meta.task, task_obj)
    lm = _load(model, device, max_input_tokens)
    result = evaluate_transfer(lm, prompt, task_obj, data_dir, split, max_examples, batch_size, cast(Any, prefix))
    console.print(_metrics_table(
        f"transfer {result.source} -> {result.target} / {split} (prefix {result.prefix!r}), {result.examples} examples",
        [("zero-shot", result.metrics), ("source dev (recorded)", (result.source_dev_metric or {}).get("metrics"))]))
    _write_json(json_out, {**result.to_dict(), "model": model, "command": _command()})


@experiments_app.command("report-run")
def report_run(
    task: List[str] = typer.Option(..., "--task", "-t", help="Task(s) to run (repeat the option)."),
    methods: str = typer.Option("majority,design,defaults", "--methods",
                                help="Comma-separated: majority, design, defaults (prompt tuning with the library's "
                                "defaults), prompt (fixed report settings, per seed), ensemble, model."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Prompt-tuning seeds to run, e.g. 0,1,2 (default: 0..settings.seeds-1)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Prompt-tuning steps (default: the settings' per-task steps)."),
    model_steps: Optional[int] = typer.Option(None, "--model-steps", help="Model-tuning steps (default: the prompt-tuning steps)."),
    model_lr: Optional[float] = typer.Option(None, "--model-lr", help="Model-tuning learning rate (default: the settings' "
                                             "model_learning_rate, 5e-5)."),
    model_bands: Optional[bool] = typer.Option(None, "--model-length-bands/--no-model-length-bands",
                                               help="Model tuning in length bands (default: on a CPU, off on CUDA)."),
    max_dev: Optional[int] = typer.Option(None, "--max-dev", help="Evaluate on the first N dev examples (default 300)."),
    settings_file: Optional[Path] = typer.Option(None, "--settings", help="JSON overriding ReportSettings fields."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model (default: the settings' model)."),
    results: Optional[Path] = typer.Option(None, "--results", help="Results JSON to append to (default: reports/results/<model>.json)."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Where the prompt-tuning runs are written (default: runs/report/<model>)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_HELP),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Run the report's methods on task(s); each result is saved to the results JSON at once."""
    import dataclasses

    from softprompt.experiments.report import load_report_settings, run_task

    settings = load_report_settings(settings_file)
    updates: dict[str, Any] = {}
    if steps is not None:
        updates["steps"] = {**settings.steps, **{t: steps for t in task}}
    if model_steps is not None:
        updates["model_steps"] = {**settings.model_steps, **{t: model_steps for t in task}}
    if model_lr is not None:
        updates["model_learning_rate"] = model_lr
    if model_bands is not None:
        updates["model_length_bands"] = model_bands
    if max_dev is not None:
        updates["max_dev_per_task"] = {**settings.max_dev_per_task, **{t: max_dev for t in task}}
    if model is not None:
        updates["model"] = model
    settings = dataclasses.replace(settings, **updates)
    results = results or Path("reports/results") / f"{settings.model}.json"
    runs_dir = runs_dir or Path("runs/report") / settings.model
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    seed_list = [int(s) for s in seeds.split(",")] if seeds else None
    task_objs = [_task(t, data_dir) for t in task]
    for t in task_objs:
        t.load("dev")
    lm = None if set(method_list) <= {"majority"} else _load(settings.model, device, settings.max_input_tokens)
    for t in task_objs:
        run_task(lm, t, settings, method_list, results, runs_dir, command=_command(), seeds=seed_list,
                 log=lambda msg: err_console.print(msg, markup=False, highlight=False), show_progress=True)
    console.print(f"results in {results}", markup=False)


@experiments_app.command("report-import")
def report_import(
    task: str = typer.Option(..., "--task", "-t", help="The task the run trained."),
    run: Path = typer.Option(..., "--run", help="A finished `softprompt train` run folder."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="The model it ran on."),
    train_split: str = typer.Option("train", "--train-split", help="The split it trained on."),
    results: Optional[Path] = typer.Option(None, "--results", help="Results JSON (default: reports/results/<model>.json)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_HELP),
) -> None:
    """Record a finished training run with the library's defaults as a task's prompt-tuning result."""
    from softprompt.experiments.report import import_run

    results = results or Path("reports/results") / f"{model}.json"
    record = import_run(results, _task(task, data_dir), run, model, train_split)
    console.print(f"{task}: {record['metrics']} -> {results}", markup=False)


@experiments_app.command("report-build")
def report_build(
    results: List[Path] = typer.Option([Path("reports/results/smollm2.json"), Path("reports/results/gemma3-270m.json")],
                                       "--results", help="Results JSON(s), one per model (repeat the option)."),
    out: Path = typer.Option(Path("reports/results.md"), "--out"),
    detailed: bool = typer.Option(False, "--detailed", help="The detailed report of one results file (prompt "
                                  "ensembles, per-seed runs, the model-tuning lr check) instead of the summary."),
    lr_check_dir: Path = typer.Option(Path("reports/model_lr_check"), "--lr-checks",
                                      help="Folder of model-tune --json outputs shown as model tuning's learning-rate check (if present)."),
    notes: Path = typer.Option(Path("reports/notes.md"), "--notes", help="--detailed: free text placed after the table (if present)."),
    ablation_dir: Path = typer.Option(Path("reports/ablation"), "--ablations",
                                      help="Folder of `ablate` records drawn into the report (if present)."),
    ensemble_dir: Path = typer.Option(Path("reports/ensembles"), "--ensembles",
                                      help="Folder of `ensemble --json` records shown in the report (if present)."),
    transfer_dir: Path = typer.Option(Path("reports/transfer"), "--transfers",
                                      help="Folder of `transfer --json` records shown in the report (if present)."),
    variant_dir: Path = typer.Option(Path("reports/variants"), "--variants",
                                     help="Folder of <model>/<task>/<name>/ runs (result.json, metrics.jsonl) with a "
                                     "setting changed, shown beside the defaults runs (if present)."),
) -> None:
    """Regenerate the Markdown report from the results JSON(s)."""
    from softprompt.experiments.report import write_report, write_summary

    if detailed:
        if len(results) != 1:
            raise SoftPromptError("--detailed takes one --results file")
        write_report(results[0], out, lr_check_dir, notes)
    else:
        write_summary([r for r in results if r.is_file()] or results, out, ablation_dir, ensemble_dir, transfer_dir,
                      variant_dir, lr_check_dir)
    console.print(f"wrote {out}", markup=False)


def main() -> None:
    """`python -m softprompt.cli.experiments`: user errors print one line, exit 2."""
    import click

    from softprompt.core.config import ConfigError

    try:
        code = experiments_app(standalone_mode=False)
    except (SoftPromptError, ConfigError) as err:
        err_console.print(f"[red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    if isinstance(code, int) and code != 0:  # typer.Exit(n) is returned, not raised, without standalone mode
        sys.exit(code)



@experiments_app.command("ablate")
def ablate(
    task: str = typer.Option(..., "--task", "-t", help="Task name."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP),
    lengths: List[int] = typer.Option([1, 5, 20, 100], "--length", "-p", help="Prompt lengths (repeat the option)."),
    inits: List[str] = typer.Option(["random-uniform", "sampled-vocab", "class-label"], "--init",
                                    help="Inits (repeat the option)."),
    seeds: List[int] = typer.Option([0], "--seed", help="Seeds (repeat the option)."),
    steps: int = typer.Option(150, "--steps", help="Updates per run."),
    max_dev: int = typer.Option(300, "--max-dev", help="Score on the first N dev examples."),
    max_input_tokens: int = typer.Option(256, "--max-input-tokens"),
    out: Path = typer.Option(Path("reports/ablation"), "--out", help="Folder of the records (<model>-<task>.json)."),
    runs_dir: Path = typer.Option(Path("runs/ablation"), "--runs-dir", help="Where each cell's run folder goes."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_HELP),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Prompt length x init (the paper's Figure 3): one run per cell, resumable; `report-build` draws it."""
    from softprompt.experiments.ablation import AblationSettings, record_path, run_ablation

    settings = AblationSettings(lengths=tuple(lengths), inits=tuple(inits), seeds=tuple(seeds), steps=steps,
                                max_dev=max_dev, max_input_tokens=max_input_tokens)
    task_obj = _task(task, data_dir)
    if "class-label" in settings.inits and not task_obj.label_words:
        raise SoftPromptError(f"--init class-label: task {task!r} has no label words (its options are per example)")
    lm = _load(model, device)
    run_ablation(lm, task_obj, model, settings, out, runs_dir, command=_command(),
                 log=lambda msg: err_console.print(msg, markup=False, highlight=False))
    console.print(f"record in {record_path(out, model, task)}", markup=False)


@experiments_app.command("interpret")
def interpret(
    prompts: List[Path] = typer.Argument(..., help="Trained prompt files."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model for every prompt (default: the model each "
                                        "prompt file names, so prompts of several models share one report)."),
    out: Path = typer.Option(Path("reports"), "--out", help="Folder for interpretability.md / .json."),
    figures: Path = typer.Option(Path("reports/figures"), "--figures", help="Folder for the figures."),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """What trained prompts learned: nearest tokens per row, label words kept, row similarity (figures)."""
    from softprompt.experiments.interpretability import analyse_prompts, write_report

    analyses = analyse_prompts(prompts, lambda name: _load(name, device), model)
    path = write_report(analyses, out, figures, _command())
    for a in analyses:
        kept = f"{a.label_rows_keeping_a_label}/{a.label_rows}" if a.label_rows else "-"
        console.print(f"{a.task} ({a.init}): label rows keeping a label word {kept}; "
                      f"rows with a label word {a.rows_with_a_label}/{a.length}")
    console.print(f"wrote {path}")


@experiments_app.command("prompt-manifest")
def prompt_manifest(
    reports: Path = typer.Option(Path("reports"), "--reports", help="Folder of the records (the manifest is written there)."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 when a cited prompt is missing from the "
                               "manifest or a local prompt file differs from its hash."),
    rehash: Optional[List[str]] = typer.Option(None, "--rehash", help="A cited prompt file retrained since its hash was "
                                               "recorded, whose records were rebuilt from it: record its new hash "
                                               "(repeatable). Without it a differing local file keeps the recorded hash."),
) -> None:
    """Record the SHA-256 of each prompt file under runs/ that a record cites (runs/ is not committed)."""
    from softprompt.experiments.prompt_manifest import (
        MANIFEST,
        check_manifest,
        kept_over_local_files,
        load_manifest,
        write_manifest,
    )

    if check:
        problems = check_manifest(load_manifest(reports / MANIFEST), reports)
        for problem in problems:
            err_console.print(problem, markup=False, highlight=False)
        if problems:
            raise typer.Exit(1)
        console.print(f"{reports / MANIFEST}: every cited prompt listed, local files match", markup=False)
        return
    path = write_manifest(reports, rehash=rehash or ())
    manifest = json.loads(path.read_text())
    entries = manifest["prompts"]
    unhashed = sum(1 for e in entries.values() if not e.get("sha256"))
    console.print(f"wrote {path}: {len(entries)} prompts ({unhashed} not on this machine, no hash)", markup=False)
    for prompt in kept_over_local_files(manifest):
        err_console.print(f"kept the recorded hash of {prompt}: the local file differs (a later run wrote over it); "
                          f"if its records were rebuilt from this file, pass --rehash {prompt}", markup=False,
                          highlight=False)


if __name__ == "__main__":
    main()

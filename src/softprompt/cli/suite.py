"""`softprompt eval --suite`: the table and the command around evaluation.suite."""
from __future__ import annotations

import json
from pathlib import Path

from softprompt.errors import SoftPromptError
from softprompt.evaluation.suite import SuiteResult, find_prompts, run_suite, suite_tasks


def suite_table(result: SuiteResult):
    """The rich table: one row per task with its official metrics and score, then the average."""
    from rich.table import Table

    name = {"superglue": "SuperGLUE", "glue": "GLUE"}.get(result.suite, result.suite)
    title = f"{name} ({result.split}) on {result.model}"
    table = Table(title=title)
    for col in ("task", "official metrics", "score", "examples", "seconds"):
        table.add_column(col, justify="left" if col in ("task", "official metrics") else "right",
                         no_wrap=col != "official metrics")
    table.add_column("prompt", overflow="fold")
    official = suite_tasks(result.suite)
    for task, o in result.tasks.items():
        if o.error:
            table.add_row(task, f"[red]error: {o.error}[/]", "-", "-", "-", o.prompt)
            continue
        metrics = "  ".join(f"{m} {o.metrics[m]:.2f}" for m in official[task] if m in o.metrics)
        table.add_row(task, metrics, f"{o.score:.2f}", str(o.examples), f"{o.seconds:.1f}", o.prompt)
    avg = result.average
    n, total = len(result.scored), len(official)
    table.add_section()
    table.add_row(f"[bold]{name} average[/]", f"over {n} of {total} tasks", "-" if avg is None else f"[bold]{avg:.2f}[/]",
                  "", "", "")
    if not result.complete:
        table.caption = f"missing: {', '.join(result.missing)} (the benchmark's score needs all {total} tasks)"
    return table


def run_suite_command(suite, prompt_dir, model, data_dir, split, batch_size, max_examples, json_out, device, console) -> SuiteResult:
    """The CLI's `eval --suite`: find prompts (fail fast, before loading the model), evaluate,
    print the table, write JSON when asked."""
    if prompt_dir is None:
        raise SoftPromptError("--suite needs PROMPT: a folder of prompt files")
    found = find_prompts(prompt_dir, suite)
    if not found[0]:
        raise SoftPromptError(
            f"no prompt for any {suite} task in {prompt_dir} (looked for *.safetensors whose metadata task, "
            f"file name or folder name is one of {', '.join(suite_tasks(suite))})"
        )
    from softprompt.core.loading import load_model

    lm = load_model(model, device=device)
    with console.status("evaluating ...") as status:
        result = run_suite(lm, suite, prompt_dir, data_dir, split, batch_size, max_examples, found=found,
                           progress=lambda name: status.update(f"evaluating {name} ..."))
    console.print(suite_table(result))
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    if json_out is not None:
        Path(json_out).write_text(json.dumps(result.to_dict(), indent=2))
        console.print(f"wrote {json_out}", markup=False)
    return result

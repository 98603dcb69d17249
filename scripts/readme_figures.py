"""Write the README's figures from the committed records they come from.

    python scripts/readme_figures.py            # rewrites the generated blocks in README.md
    python scripts/readme_figures.py --check    # exit 1 if README.md is not what the records give

Blocks: the main job (from `reports/main_job/`, the run folder's result.json and metrics.jsonl,
copied there after running the README's main-job command), the own-task example (the same two
files of `softprompt train --task examples/own_task/nli.yaml`, in `reports/own_task/nli/`) and the
benchmarks (from the tables
the benchmark scripts write under `benchmarks/`). Nothing here is typed by hand.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "reports" / "main_job"
START, END = "<!-- main-job:start -->", "<!-- main-job:end -->"
BENCH_START, BENCH_END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
BENCH = ROOT / "benchmarks"
OWN_TASK = ROOT / "reports" / "own_task" / "nli"
OWN_START, OWN_END = "<!-- own-task:start -->", "<!-- own-task:end -->"


def md_table(path: Path, first_column: str) -> list[dict[str, str]]:
    """The rows of the markdown table in `path` whose header starts with `first_column`."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_column:
            rows = []
            for body in lines[i + 2:]:
                if not body.startswith("|"):
                    break
                rows.append(dict(zip(cells, (c.strip().strip("*") for c in body.strip().strip("|").split("|")))))
            return rows
    raise SystemExit(f"{path}: no table with a {first_column!r} column")


def _bold_after(path: Path, label: str) -> str:
    """The bold figure that follows `label` in a generated markdown file."""
    match = re.search(re.escape(label) + r"[^*]*\*\*([^*]+)\*\*", path.read_text())
    if match is None:
        raise SystemExit(f"{path}: no bold figure after {label!r}")
    return match.group(1)


def _generated_on(path: Path) -> str:
    match = re.search(r"(?:Generated on|Run|date:) ?(\d{4}-\d{2}-\d{2})", path.read_text())
    return match.group(1) if match else "?"


def benchmarks_text() -> str:
    lines = []
    steps = md_table(BENCH / "train_step.md", "model")
    by = {(r["model"], r["method"]): r for r in steps}
    parts = []
    for model in dict.fromkeys(r["model"] for r in steps):
        sp, ck = by.get((model, "softprompt")), by.get((model, "softprompt-ckpt2"))
        if sp is None:
            continue
        forward = f", {sp['step / forward']} forwards of the same batch" if sp.get("step / forward") else ""
        ckpt = f" ({ck['vs full FT']} with `--activation-checkpointing 2`)" if ck else ""
        parts.append(f"{model}: {sp['s / step']} s per step, {sp['vs PEFT (speed-up)']} PEFT's speed{forward}; "
                     f"peak memory {sp['vs full FT']} of full fine-tuning's{ckpt}")
    lines.append(f"- **Training step** (`benchmarks/train_step.md`, {_generated_on(BENCH / 'train_step.md')}): "
                 + "; ".join(parts) + ".")
    evals = md_table(BENCH / "eval_throughput.md", "task")
    if evals and "shared vs peft" in evals[0]:
        parts = [f"{r['task']} {r['shared vs peft']} PEFT's examples/s (one row per option: {r['per-row vs peft']}; "
                 f"same prediction {r['same prediction as peft']})" for r in evals]
        lines.append(f"- **Evaluation** (`benchmarks/eval_throughput.md`, "
                     f"{_generated_on(BENCH / 'eval_throughput.md')}), rank classification on the whole dev set: "
                     + "; ".join(parts) + ".")
    padding = md_table(BENCH / "padding.md", "model")
    if padding:
        saved = [int(r["saved"].rstrip("%")) for r in padding]
        worst = max(padding, key=lambda r: float(r["random: padded / real"]))
        lines.append(f"- **Padding** (`benchmarks/padding.md`, {_generated_on(BENCH / 'padding.md')}): batches grouped "
                     f"by length compute {min(saved)}-{max(saved)}% fewer tokens (real and padding) than random batches over a "
                     f"CPU-default run (random batches: up to {worst['random: padded / real']} tokens computed per "
                     f"real one, {worst['task']} on {worst['model']}).")
    bands_table = BENCH / "length_bands.md"
    if bands_table.is_file():
        from softprompt.core.batching import BAND_OVERHEAD_TOKENS

        rows = [r for r in md_table(bands_table, "model") if r["mode"] == f"bands, overhead {BAND_OVERHEAD_TOKENS}"]
        speed = [float(r["speed-up"].rstrip("x")) for r in rows]
        gap = max(float(r["gradient"]) for r in rows)
        lines.append(f"- **Length bands** (`benchmarks/length_bands.md`, {_generated_on(bands_table)}): an update "
                     f"computed in length bands (the CPU default) runs at {min(speed):.2f}-{max(speed):.2f}x the speed of "
                     f"one padded pass on real batches ({', '.join(sorted({r['task'] for r in rows}))}; both models), "
                     f"its gradient within {gap:.0e} (relative) of the padded pass's.")
    serve = BENCH / "serve_throughput.md"
    lines.append(f"- **Serving** (`benchmarks/serve_throughput.md`, {_generated_on(serve)}): mixed-task batching "
                 f"{_bold_after(serve, '(1)/(3) throughput ratio')} the throughput of PEFT switching adapters, "
                 f"{_bold_after(serve, '(1)/(4) throughput ratio').rstrip('x')}x that of a single-task stream.")
    replicas = BENCH / "serve_replicas.md"
    lines.append(f"- **Ray Serve replicas** (`benchmarks/serve_replicas.md`, {_generated_on(replicas)}): 2 replicas "
                 f"{_bold_after(replicas, '2 replicas / 1 replica')} the throughput of 1 on this 2-core machine.")
    return "\n".join(lines)


def _minutes(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s"


def _conversion(run: dict) -> str:
    """What the model load included (records before `model_converted` existed: unknown)."""
    if run.get("model_converted") is None:
        return ""
    return (" (including the one-time conversion of the packaged GGUF model)" if run["model_converted"]
            else " (the converted model already cached)")


def main_job_text(record: Path = RECORD, task: str = "SST-2", metric: str = "accuracy") -> str:
    result = json.loads((record / "result.json").read_text())
    log = [json.loads(line) for line in (record / "metrics.jsonl").read_text().splitlines() if line.strip()]
    settings, run = result["settings"], result["run"]
    train, sources = settings["train"], settings["sources"]
    before = result["initial_metrics"][metric]
    after = (result["final_metrics"] or result["best_metrics"])[metric]
    dev_examples = next(r.get("full_examples", r["examples"]) for r in log if r["event"] == "eval")
    evals = [r for r in log if r["event"] in ("eval", "final_eval")]
    eval_seconds = sum(r["seconds"] for r in evals)
    length = settings["prompt"]["length"]
    machine = run["machine"]
    wall = run["model_load_seconds"] + result["seconds"]
    return (
        f"Measured with that command ({run['started'][:10]}, {machine['cpus']}-core {machine['processor']} CPU, "
        f"torch {machine['torch']}; record: `{record.relative_to(ROOT)}/`): {task} dev {metric} **{before:.1f} before "
        f"training -> {after:.1f} after** ({dev_examples} dev examples), {result['steps']} updates of batch "
        f"{train['batch_size']} with a {length}-token prompt and lr {train['learning_rate']:g} "
        f"({sources['learning_rate']}); best prompt at update {result['best_step']}. "
        f"{_minutes(wall)} wall: model load {run['model_load_seconds']:.0f} s{_conversion(run)}, training and "
        f"{len(evals)} evaluations {_minutes(result['seconds'])} (of which evaluation {_minutes(eval_seconds)})."
    )


def render(readme: str, text: str, start: str = START, end: str = END) -> str:
    if start not in readme or end not in readme:
        raise SystemExit(f"README.md has no {start} ... {end} block")
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{text}\n{end}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="Fail if README.md differs from the record.")
    args = parser.parse_args()
    path = ROOT / "README.md"
    readme = path.read_text()
    new = render(readme, main_job_text())
    new = render(new, benchmarks_text(), BENCH_START, BENCH_END)
    new = render(new, main_job_text(OWN_TASK, "nli (the CB files)", "macro_f1"), OWN_START, OWN_END)
    if args.check:
        sys.exit(0 if new == readme else 1)
    path.write_text(new)


if __name__ == "__main__":
    main()

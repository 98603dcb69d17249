"""Write the README's main-job figures from the committed record of that run.

    python scripts/readme_figures.py            # rewrites the block between the markers in README.md
    python scripts/readme_figures.py --check    # exit 1 if README.md is not what the record gives

The record is `reports/main_job/` (the run folder's result.json and metrics.jsonl, copied
there after running the README's main-job command); nothing here is typed by hand.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "reports" / "main_job"
START, END = "<!-- main-job:start -->", "<!-- main-job:end -->"


def _minutes(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s"


def main_job_text(record: Path = RECORD) -> str:
    result = json.loads((record / "result.json").read_text())
    log = [json.loads(line) for line in (record / "metrics.jsonl").read_text().splitlines() if line.strip()]
    settings, run = result["settings"], result["run"]
    train, sources = settings["train"], settings["sources"]
    metric = "accuracy"
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
        f"torch {machine['torch']}; record: `reports/main_job/`): SST-2 dev accuracy **{before:.1f}% before "
        f"training -> {after:.1f}% after** ({dev_examples} dev examples), {result['steps']} updates of batch "
        f"{train['batch_size']} with a {length}-token prompt and lr {train['learning_rate']:g} "
        f"({sources['learning_rate']}); best prompt at update {result['best_step']}. "
        f"{_minutes(wall)} wall: model load {run['model_load_seconds']:.0f} s, training and "
        f"{len(evals)} evaluations {_minutes(result['seconds'])} (of which evaluation {_minutes(eval_seconds)})."
    )


def render(readme: str, text: str) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md has no {START} ... {END} block")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{text}\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="Fail if README.md differs from the record.")
    args = parser.parse_args()
    path = ROOT / "README.md"
    readme = path.read_text()
    new = render(readme, main_job_text())
    if args.check:
        sys.exit(0 if new == readme else 1)
    path.write_text(new)


if __name__ == "__main__":
    main()

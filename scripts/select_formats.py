"""Score each task's formats zero-shot on rows held out from *train*, for each shipped model.

    python scripts/select_formats.py       # writes reports/format_selection.{json,md}

A decoder-only model reads the input and then scores each label word as its next word: the
format decides whether that word is where the model expects an answer. For every built-in
classification task this scores the `natural` and `t5` formats (tasks.base) with no prompt at
all, on the last rows of the train split (never dev; BoolQ and ReCoRD, which have no train
file here, use their FewGLUE dev32 file), by accuracy and balanced accuracy (the mean of the
per-class recalls: a format under which the model always gives one answer scores 1/classes
there, however skewed the rows are).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

import softprompt as sp
from softprompt.evaluation.evaluator import predict
from softprompt.tasks.base import TaskFormat

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("sst2", "mrpc", "qqp", "rte", "cb", "boolq", "wic", "wsc", "copa", "multirc", "record")
HELD_OUT_SPLIT = {"boolq": "fewglue32-dev32", "record": "fewglue32-dev32"}
# Further candidates, scored beside the task's own formats (`--extra`); the winner is what the
# task class ships as its natural format.
EXTRA = {
    "sst2": {
        "question-form": TaskFormat("{sentence}\nQuestion: Is this movie review positive or negative?\nAnswer:",
                                    ("negative", "positive")),
        "review-sentiment": TaskFormat("Review: {sentence}\nSentiment:", ("negative", "positive")),
        "sst2-cue": TaskFormat("sst2 sentence: {sentence}\nsentiment:", ("negative", "positive")),
        "review-question": TaskFormat("Movie review: {sentence}\nQuestion: Is this review positive or "
                                      "negative?\nAnswer:", ("negative", "positive")),
    },
    "cb": {
        "true-false-neither": TaskFormat("{premise}\nQuestion: {hypothesis} True, False, or Neither?\nAnswer:",
                                         ("True", "False", "Neither")),
        "yes-no-maybe": TaskFormat("{premise}\nQuestion: Does this mean that {hypothesis}? Yes, no, or maybe?\n"
                                   "Answer:", ("yes", "no", "maybe")),
        "cb-cue": TaskFormat("cb hypothesis: {hypothesis} premise: {premise}\nanswer:",
                             ("entailment", "contradiction", "neutral")),
    },
    "multirc": {
        "is-correct": TaskFormat('{paragraph}\nQuestion: {question}\nIs "{answer}" a correct answer?\nAnswer:',
                                 ("no", "yes")),
        "true-false": TaskFormat('{paragraph}\nQuestion: {question}\nProposed answer: {answer}\n'
                                 "Is the proposed answer true or false?\nAnswer:", ("false", "true")),
    },
}


def balanced_accuracy(predictions: list[str], examples: list) -> float:
    """Mean per-class recall; classes are the gold labels' positions among the options."""
    recalls = []
    labels = sorted({ex.label for ex in examples if ex.label is not None})
    for label in labels:
        rows = [(p, ex) for p, ex in zip(predictions, examples) if ex.label == label]
        recalls.append(sum(p == ex.target for p, ex in rows) / len(rows))
    return 100.0 * sum(recalls) / len(recalls)


def held_out(task, n: int) -> list:
    split = HELD_OUT_SPLIT.get(task.name, "train")
    rows = task.load(split)
    return rows if split != "train" else rows[-n:]


def run(model: str, n: int, data_dir: str, tasks: tuple[str, ...], extra: bool) -> list[dict]:
    lm = sp.load_model(model, max_input_tokens=256)
    out = []
    for name in tasks:
        candidates = ["natural", "t5"] + (list(EXTRA.get(name, {})) if extra else [])
        for fmt in candidates:
            task = sp.get_task(name, data_dir=data_dir)
            task.formats = {**task.formats, **EXTRA.get(name, {})}
            task.set_format(fmt)
            examples = held_out(task, n)
            start = time.perf_counter()
            predictions, _ = predict(lm, examples, None, batch_size=16)
            record = {
                "model": model, "task": name, "format": fmt, "rows": len(examples),
                "split": HELD_OUT_SPLIT.get(name, f"train[-{n}:]"),
                "label_words": list(task.label_words) if task.label_words else None,
                "accuracy": 100.0 * sum(p == ex.target for p, ex in zip(predictions, examples)) / len(examples),
                "balanced_accuracy": (balanced_accuracy(predictions, examples)
                                      if task.label_words else None),
                "seconds": round(time.perf_counter() - start, 1),
            }
            print(json.dumps(record), flush=True)
            out.append(record)
    return out


def write_table(records: list[dict], meta: dict, path: Path) -> None:
    lines = [
        "# Task formats, zero-shot on rows held out from train",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}); record: "
        "`reports/format_selection.json`. No prompt, rank classification over the label words (COPA, "
        "ReCoRD: each example's own options). Balanced accuracy = mean per-class recall (chance: 100 / "
        "classes; '-' for per-example options).",
        "",
        "| model | task | rows (split) | natural: acc. / balanced | t5: acc. / balanced | natural label words |",
        "|---|---|---|---|---|---|",
    ]
    def cell(r: dict) -> str:
        bal = "-" if r["balanced_accuracy"] is None else f"{r['balanced_accuracy']:.1f}"
        return f"{r['accuracy']:.1f} / {bal}"

    by_key = {(r["model"], r["task"], r["format"]): r for r in records}
    for model in dict.fromkeys(r["model"] for r in records):
        for task in TASKS:
            nat, t5 = by_key.get((model, task, "natural")), by_key.get((model, task, "t5"))
            if not nat or not t5:
                continue
            words = ", ".join(nat["label_words"]) if nat["label_words"] else "(per-example options)"
            lines.append(f"| {model} | {task} | {nat['rows']} ({nat['split']}) | {cell(nat)} | {cell(t5)} | {words} |")
    extras = [r for r in records if r["format"] not in ("natural", "t5")]
    shipped_as = {r["task"]: r["same_as"] for r in records if r.get("same_as")}
    if shipped_as:
        lines += ["", "The natural format of " + ", ".join(f"{t} is candidate '{c}'" for t, c in shipped_as.items())
                  + " below."]
    if extras:
        lines += ["", "Further candidates (the task's `natural` format is the one shipped):", "",
                  "| model | task | format | template | acc. / balanced |", "|---|---|---|---|---|"]
        for r in extras:
            template = EXTRA[r["task"]][r["format"]].template.replace("\n", "\\n")
            lines.append(f"| {r['model']} | {r['task']} | {r['format']} | `{template}` | {cell(r)} |")
    lines += ["", "Rule: a task ships, as its natural format, the candidate ending in an answer cue with the best "
              "mean balanced accuracy over both models (accuracy for per-example options)."]
    wins = [  # natural vs t5 only
        (by_key[(m, t, "natural")], by_key[(m, t, "t5")]) for (m, t, f) in by_key if f == "natural"
        if (m, t, "t5") in by_key
    ]
    score = lambda r: r["balanced_accuracy"] if r["balanced_accuracy"] is not None else r["accuracy"]  # noqa: E731
    better = sum(score(n) > score(t) for n, t in wins)
    lines += ["", f"Natural scores above T5's (balanced accuracy; accuracy for per-example options) in {better} of "
              f"{len(wins)} model-task pairs."]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2", "gemma3-270m"])
    parser.add_argument("--rows", type=int, default=100, help="Held-out rows per task (the last N of train).")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "reports" / "format_selection"))
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--extra", action="store_true", help="Also score the further candidates (EXTRA).")
    parser.add_argument("--append", action="store_true", help="Add to the existing record (same keys replaced).")
    parser.add_argument("--table-only", action="store_true", help="Rewrite the table from the record; run nothing.")
    args = parser.parse_args()
    if args.table_only:
        record = json.loads(Path(args.out).with_suffix(".json").read_text())
        write_table(record["runs"], record["meta"], Path(args.out).with_suffix(".md"))
        return
    records = [r for m in args.models for r in run(m, args.rows, args.data_dir, tuple(args.tasks), args.extra)]
    out = Path(args.out)
    command = " ".join(["python scripts/select_formats.py", *sys.argv[1:]])
    if args.append and out.with_suffix(".json").is_file():
        old = json.loads(out.with_suffix(".json").read_text())
        key = lambda r: (r["model"], r["task"], r["format"])  # noqa: E731
        new = {key(r) for r in records}
        records = [r for r in old["runs"] if key(r) not in new] + records
        command = old["meta"]["command"] + "; " + command
    meta = {"command": command, "date": date.today().isoformat(),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
            "rows": args.rows}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "runs": records}, indent=2) + "\n")
    write_table(records, meta, out.with_suffix(".md"))


if __name__ == "__main__":
    main()

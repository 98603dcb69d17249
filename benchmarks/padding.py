"""Padding in training batches: uniformly random batches (the default) vs length-grouped ones (--group-by-length).

A batch is padded to its longest row, so the compute a training run spends is the padded
tokens, not the real ones. For each task and model this counts, over the batches a run with the
CPU defaults draws (300 updates of 8, seed 0, 20-token prompt, inputs cut to 256 tokens), the
real tokens and the padded tokens of each order, with the model's own tokenisation
(PromptedLM.encode). No model compute: the counts are exact, the time saved follows them.

    python benchmarks/padding.py            # prints the table, writes benchmarks/padding.md
    python benchmarks/padding.py --models smollm2 --tasks rte cb
"""
from __future__ import annotations

import argparse
import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SPLITS = {"boolq": "fewglue32-train"}  # the shared data has BoolQ's 32-example train file only
TASKS = ("sst2", "mrpc", "rte", "cb", "wic", "wsc", "copa", "boolq", "examples/own_task/nli.yaml")


def count(lm, examples, grouped: bool, updates: int, batch_size: int, prompt_length: int) -> tuple[int, int]:
    """(real tokens, padded tokens) over the first `updates` batches of a seed-0 stream."""
    from softprompt.training.sampling import ExampleStream, token_length

    length = token_length(lm, max_input_tokens=256)
    stream = ExampleStream(examples, seed=0, batch_size=batch_size if grouped else None, length=length)
    real = padded = 0
    for step in range(updates):
        lengths = [length(ex) + prompt_length for ex in stream.take(step * batch_size, batch_size)]
        real += sum(lengths)
        padded += max(lengths) * len(lengths)
    return real, padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2", "gemma3-270m"])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--prompt-length", type=int, default=20)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=HERE / "padding.md")
    args = parser.parse_args()

    import softprompt as sp
    from softprompt.tasks.registry import resolve_data_dir

    data_dir = resolve_data_dir(args.data_dir)
    lines = [
        "# Padding in training batches: random vs length-grouped",
        "",
        f"Run {datetime.date.today().isoformat()}. Command: `python benchmarks/padding.py "
        f"--updates {args.updates} --batch-size {args.batch_size} --prompt-length {args.prompt_length}`.",
        f"The batches of a seed-0 run's first {args.updates} updates of {args.batch_size} (each task's train split, "
        f"BoolQ's {SPLITS['boolq']}, "
        f"its decoder-only format, inputs cut to 256 tokens, a {args.prompt_length}-token prompt), tokenised by each "
        "model. Padded / real: the tokens a batch computes over the tokens it holds. Saved: the share of computed tokens (real plus padding) "
        "that grouping removes (the forward and backward cost of a step grows with them).",
        "",
        "| model | task | mean row (tokens) | random: padded / real | grouped: padded / real | saved |",
        "|---|---|---|---|---|---|",
    ]
    for model in args.models:
        lm = sp.load_model(model)
        for name in args.tasks:
            task = sp.get_task(name, data_dir)
            examples = task.load(SPLITS.get(name, "train"))
            real, random_padded = count(lm, examples, False, args.updates, args.batch_size, args.prompt_length)
            real_g, grouped_padded = count(lm, examples, True, args.updates, args.batch_size, args.prompt_length)
            mean = real / (args.updates * args.batch_size)
            label = Path(name).stem if name.endswith((".yaml", ".yml", ".json")) else name
            line = (f"| {model} | {label} | {mean:.0f} | {random_padded / real:.2f} | {grouped_padded / real_g:.2f} | "
                    f"{1 - grouped_padded / random_padded:.0%} |")
            print(line, flush=True)
            lines.append(line)
    lines += ["", "The two orders draw different examples in a 300-update run (each covers every example once "
              "per epoch), so 'real' differs slightly between them; each ratio is over its own batches."]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

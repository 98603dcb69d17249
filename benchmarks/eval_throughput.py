"""Rank-classification throughput: softprompt against PEFT prompt tuning, same model, same
prompt, same examples, same batch size and threads, one run.

    peft      the prompt exported with `softprompt export` and loaded by
              `PeftModel.from_pretrained`; each (input, option) pair is one row of PEFT's own
              forward (virtual tokens prepended), the option's tokens read from its logits:
              how a PEFT user scores options
    per-row   softprompt's `score_options(..., share_prefix=False)`: also one full row per
              option, through softprompt's batching (LM head only at the option's positions)
    shared    softprompt's default: the prompt + input run once per example; one-token options
              are read from the last position's distribution, longer ones reuse the input's KV cache

For each task the dev examples are scored in batches of `--batch-size` examples by every
path, in rotating order (so slow drift of a shared machine hits all alike); the table gives
each path's examples per second in its fastest pass (interference only adds time), the
speed-ups over PEFT, and checks that the paths agree (max |score difference| against PEFT,
same predictions).

    flock /tmp/softprompt-cpu.lock python benchmarks/eval_throughput.py   # writes benchmarks/eval_throughput.md
    python benchmarks/eval_throughput.py --tasks cb --examples 16 --repeats 1 --out ''
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PATHS = ("peft", "per-row", "shared")


def _softprompt_scores(lm, examples, prompt, batch_size: int, share_prefix: bool, limit: int) -> list[list[float]]:
    scores: list[list[float]] = []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        scores += lm.score_options([e.input for e in chunk], [e.options for e in chunk], prompt,
                                   share_prefix=share_prefix, max_input_tokens=limit)
    return scores


def _peft_scores(peft_model, lm, examples, batch_size: int, n_virtual: int, limit: int) -> list[list[float]]:
    """PEFT's forward on one right-padded row per (input, option); the option's log-likelihood
    read from the logits PEFT returns (its virtual tokens come first)."""
    import torch

    scores: list[list[float]] = []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        rows = [lm.encode(e.input, o, max_input_tokens=limit) for e in chunk for o in e.options]
        # prefix (BOS) tokens were folded into the virtual tokens by the export
        ids_list = [list(r.input_ids) + list(r.target_ids) for r in rows]
        width = max(len(ids) for ids in ids_list)
        ids = torch.full((len(rows), width), lm.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for j, row_ids in enumerate(ids_list):
            ids[j, :len(row_ids)] = torch.tensor(row_ids)
            mask[j, :len(row_ids)] = 1
        with torch.no_grad():
            logits = peft_model(input_ids=ids, attention_mask=mask).logits
        flat = []
        for j, (r, row_ids) in enumerate(zip(rows, ids_list)):
            n_target = len(r.target_ids)
            first = n_virtual + len(row_ids) - n_target - 1  # the position predicting the first option token
            lp = torch.log_softmax(logits[j, first:first + n_target].float(), dim=-1)
            flat.append(lp.gather(-1, torch.tensor(r.target_ids)[:, None]).sum().item())
        k = 0
        for e in chunk:
            scores.append(flat[k:k + len(e.options)])
            k += len(e.options)
    return scores


def run(args) -> list[dict]:
    import torch

    torch.set_num_threads(args.threads)
    from peft import PeftModel

    import softprompt as sp
    from softprompt.core.prompt_file import export_peft, metadata_for, read_prompt, save_prompt
    from softprompt.core.scoring import best_option

    lm = sp.load_model(args.model, max_input_tokens=args.max_input_tokens)
    rows = []
    for name in args.tasks.split(","):
        task = sp.get_task(name, args.data_dir)
        examples = task.load("dev")[: args.examples]
        init = "class-label" if task.label_words else "sampled-vocab"
        prompt = sp.SoftPrompt.initialise(lm, sp.PromptConfig(length=args.prompt_length, init=init),
                                          task.label_words).weight.detach()
        with tempfile.TemporaryDirectory() as tmp:
            save_prompt(Path(tmp) / "p.safetensors", prompt, metadata_for(lm, prompt))
            export_peft(read_prompt(Path(tmp) / "p.safetensors"), Path(tmp) / "adapter", lm, fold_bos=True)
            peft_model = PeftModel.from_pretrained(lm.model, Path(tmp) / "adapter")
            n_virtual = peft_model.peft_config["default"].num_virtual_tokens
            score = {
                "peft": partial(_peft_scores, peft_model, lm, batch_size=args.batch_size, n_virtual=n_virtual,
                                limit=args.max_input_tokens),
                "per-row": partial(_softprompt_scores, lm, prompt=prompt, batch_size=args.batch_size,
                                   share_prefix=False, limit=args.max_input_tokens),
                "shared": partial(_softprompt_scores, lm, prompt=prompt, batch_size=args.batch_size,
                                  share_prefix=True, limit=args.max_input_tokens),
            }
            for path in PATHS:  # warm-up
                score[path](examples[: args.batch_size])
            times: dict[str, list[float]] = {p: [] for p in PATHS}
            scores: dict[str, list[list[float]]] = {}
            for r in range(args.repeats):
                for path in PATHS[r % 3:] + PATHS[:r % 3]:
                    start = time.perf_counter()
                    scores[path] = score[path](examples)
                    times[path].append(time.perf_counter() - start)
                    print(f"{name} {path:8s} {times[path][-1]:.2f} s", file=sys.stderr, flush=True)
        option_tokens = [len(lm.encode(e.input, o).target_ids) for e in examples for o in e.options]
        input_tokens = [len(lm.encode(e.input, max_input_tokens=args.max_input_tokens).input_ids) for e in examples]
        rate = {p: len(examples) / min(times[p]) for p in PATHS}
        diff = {p: max(abs(a - b) for ra, rb in zip(scores["peft"], scores[p]) for a, b in zip(ra, rb)) for p in PATHS}
        agree = {p: sum(best_option(a) == best_option(b) for a, b in zip(scores["peft"], scores[p])) for p in PATHS}
        rows.append({
            "task": name, "examples": len(examples), "options": len(examples[0].options),
            "option_tokens": statistics.mean(option_tokens), "input_tokens": statistics.mean(input_tokens),
            "rate": rate, "times": times, "diff": diff, "agree": agree,
        })
    return rows


def render(rows: list[dict], args, wall: float, load_at_start: float) -> str:
    import peft
    import torch

    command = " ".join(["flock /tmp/softprompt-cpu.lock python benchmarks/eval_throughput.py", *sys.argv[1:]])
    lines = [
        "# Rank-classification throughput: softprompt vs PEFT prompt tuning",
        "",
        f"Generated on {datetime.date.today()} by `{command}`.",
        "",
        f"Model `{args.model}` on CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{args.threads} torch threads, torch {torch.__version__}, peft {peft.__version__}); one soft prompt of "
        f"{args.prompt_length} rows for all paths; batches of {args.batch_size} examples; inputs truncated to "
        f"{args.max_input_tokens} tokens; dev examples in file order; {args.repeats} timed passes per path in "
        f"rotating order; rates from each path's fastest pass; {wall:.0f} s in all. 1-minute load average when the "
        f"run started: {load_at_start:.2f}.",
        "",
        "- **peft**: `PeftModel.from_pretrained` on the exported prompt; one row of PEFT's forward per (input, option).",
        "- **per-row**: softprompt, `score_options(..., share_prefix=False)`: one row per option, LM head only at "
        "the option's positions.",
        "- **shared** (softprompt's default): prompt + input once per example, options read from it.",
        "",
        "| task | examples | options | mean option tokens | mean input tokens | peft (ex/s) | per-row (ex/s) | "
        "shared (ex/s) | per-row vs peft | shared vs peft | max score diff vs peft | same prediction as peft |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rate = r["rate"]
        lines.append(
            f"| {r['task']} | {r['examples']} | {r['options']} | {r['option_tokens']:.1f} | {r['input_tokens']:.1f} | "
            f"{rate['peft']:.2f} | {rate['per-row']:.2f} | {rate['shared']:.2f} | "
            f"{rate['per-row'] / rate['peft']:.2f}x | **{rate['shared'] / rate['peft']:.2f}x** | "
            f"{max(r['diff']['per-row'], r['diff']['shared']):.1e} | "
            f"{min(r['agree']['per-row'], r['agree']['shared'])}/{r['examples']} |"
        )
    lines += ["", "Timed passes (seconds for all examples):", ""]
    for r in rows:
        lines.append(f"- {r['task']}: " + "; ".join(
            f"{p} {', '.join(f'{t:.2f}' for t in r['times'][p])}" for p in PATHS))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--tasks", default="sst2,cb")
    parser.add_argument("--examples", type=int, default=None, help="first N dev examples (default: all)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--prompt-length", type=int, default=20)
    parser.add_argument("--max-input-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=os.environ.get("SOFTPROMPT_DATA_DIR", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--out", default=str(HERE / "eval_throughput.md"))
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    start = time.perf_counter()
    rows = run(args)
    text = render(rows, args, time.perf_counter() - start, load_at_start)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()

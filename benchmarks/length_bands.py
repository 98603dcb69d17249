"""Length bands: one training micro-batch computed in one padded pass vs in bands of similar length.

For each model and task, the first `--updates` batches of a seed-0 run with the CPU defaults
(random batches of 8, a 20-token prompt, inputs cut to 256 tokens) are each computed, forward
and backward to the prompt, in every mode: one padded pass, and length bands
(core.batching.length_bands) at several per-pass overheads. The modes take turns batch by batch,
so a slow spell of the machine falls on all of them. Reported: seconds per update (median), the
tokens computed (padding included) over the tokens held, the passes per update, and how far each
mode's prompt gradient is from the one padded pass's (largest relative L2 difference).

    python benchmarks/length_bands.py            # prints the table, writes benchmarks/length_bands.md
    python benchmarks/length_bands.py --models smollm2 --tasks cb --updates 4
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASKS = ("cb", "rte", "sst2")
OVERHEADS = (0, 32, 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2", "gemma3-270m"])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--updates", type=int, default=6)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=HERE / "length_bands.md")
    args = parser.parse_args()

    import torch

    import softprompt as sp
    from softprompt.core.batching import BAND_OVERHEAD_TOKENS, length_bands, row_length
    from softprompt.core.scoring import summed_nll_in_bands
    from softprompt.tasks.registry import resolve_data_dir
    from softprompt.training.defaults import CPU_PROFILE
    from softprompt.training.sampling import ExampleStream

    batch_size, prompt_length = CPU_PROFILE.batch_size, CPU_PROFILE.prompt_length
    modes = {"one padded pass": None} | {f"bands, overhead {o}": o for o in OVERHEADS}
    data_dir = resolve_data_dir(args.data_dir)
    load = os.getloadavg()[0]
    lines = [
        "# Length bands: one padded pass vs bands of similar length",
        "",
        f"Run {datetime.date.today().isoformat()} on {platform.machine()} CPU, {torch.get_num_threads()} threads "
        f"({os.cpu_count()} cores), torch {torch.__version__}. Command: `python benchmarks/length_bands.py "
        f"--updates {args.updates}`; 1-minute load average at the start: {load:.2f}.",
        f"The first {args.updates} batches of a seed-0 run with the CPU defaults (random batches of {batch_size}, "
        f"a {prompt_length}-token prompt, inputs cut to 256 tokens), each computed forward and backward to the "
        "prompt in every mode, the modes taking turns batch by batch. s / update: median. Computed / held: tokens "
        "computed (padding included) over tokens held. Gradient: the largest relative L2 distance from the one "
        f"padded pass's gradient. The library's overhead is {BAND_OVERHEAD_TOKENS} tokens per extra pass.",
        "",
        "| model | task | mode | passes / update | computed / held | s / update | speed-up | gradient |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in args.models:
        lm = sp.load_model(model)
        for name in args.tasks:
            task = sp.get_task(name, data_dir)
            stream = ExampleStream(task.load("train"), seed=0)
            prompt = torch.nn.Parameter(torch.randn(prompt_length, lm.hidden_size, generator=torch.Generator().manual_seed(0))
                                        * lm.input_embeddings.weight.float().std())
            times: dict[str, list[float]] = {m: [] for m in modes}
            passes = {m: 0 for m in modes}
            computed = {m: 0 for m in modes}
            held = 0
            worst = {m: 0.0 for m in modes}
            for step in range(args.updates):
                rows = [lm.encode(ex.input, ex.target, max_input_tokens=256)
                        for ex in stream.take(step * batch_size, batch_size)]
                lengths = [row_length(r, prompt_length) for r in rows]
                held += sum(lengths)
                tokens = sum(len(r.target_ids) for r in rows)
                reference = None
                for mode, overhead in modes.items():
                    bands = [list(range(len(rows)))] if overhead is None else length_bands(lengths, overhead)
                    prompt.grad = None
                    start = time.perf_counter()
                    (summed_nll_in_bands(lm, rows, prompt, bands) / tokens).backward()
                    times[mode].append(time.perf_counter() - start)
                    passes[mode] += len(bands)
                    computed[mode] += sum(len(b) * max(lengths[i] for i in b) for b in bands)
                    assert prompt.grad is not None
                    if reference is None:
                        reference = prompt.grad.clone()
                    else:
                        gap = ((prompt.grad - reference).norm() / reference.norm()).item()
                        worst[mode] = max(worst[mode], gap)
            base = statistics.median(times["one padded pass"])
            for mode in modes:
                median = statistics.median(times[mode])
                line = (f"| {model} | {name} | {mode} | {passes[mode] / args.updates:.1f} | {computed[mode] / held:.2f} | "
                        f"{median:.2f} | {base / median:.2f}x | {worst[mode]:.1e} |")
                print(line, flush=True)
                lines.append(line)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""The report's sections for prompt ensembles (the paper's Table 3) and domain transfer (Tables 1
and 2), each built from the JSON records the `ensemble --json` and `transfer --json` commands write
(reports/ensembles/*.json, reports/transfer/*.json); every number comes from a record, and each
record carries its command."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from softprompt.errors import SoftPromptError


def load_json_records(folder: str | Path | None) -> list[dict]:
    if folder is None or not Path(folder).is_dir():
        return []
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            out.append({**json.loads(path.read_text()), "_file": str(path)})
        except json.JSONDecodeError as err:
            raise SoftPromptError(f"{path}: not valid JSON ({err})") from None
    return out


def _metric(metrics: dict | None, name: str) -> str:
    return "-" if not metrics or name not in metrics else f"{metrics[name]:.1f}"


def ensemble_section(records: Sequence[dict]) -> str:
    """Per ensemble record: each prompt's primary metric, their average, the best one, the
    majority-vote ensemble, and the shared pass's time against N separate passes."""
    lines = ["## Prompt ensembles (the paper's Table 3)", "",
             "N prompts of one task on the one frozen model, scored in one batched pass (each batch holds every "
             "example once per prompt). Average: the mean of the prompts' scores; best: the best single prompt "
             "(chosen on the same dev examples, so an upper bound); ensemble: majority vote of the prompts' "
             "answers (ties by summed log-likelihood).", "",
             "| task | prompts | dev examples | each prompt | average | best | ensemble | shared pass (s) | "
             "N separate passes (s) | record |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        m = r["primary_metric"]
        each = ", ".join(_metric(p, m) for p in r["per_prompt"])
        separate = "-" if r.get("separate_seconds") is None else f"{r['separate_seconds']:.1f}"
        lines.append(f"| {r['task']} | {len(r['per_prompt'])} | {r['examples']} | {each} | {_metric(r['average'], m)} | "
                     f"{_metric(r['best'], m)} | {_metric(r['ensemble'], m)} | {r['seconds']:.1f} | {separate} | "
                     f"`{r['_file']}` |")
    lines += ["", "Prompts and commands:", ""]
    for r in records:
        lines.append(f"- {r['task']}: " + ", ".join(f"`{p}`" for p in r.get("prompts", [])))
        lines.append(f"    {r.get('command', '')}")
    return "\n".join(lines) + "\n"


def transfer_section(records: Sequence[dict]) -> str:
    """Per transfer record: the prompt's in-domain dev score (from its own run) beside its
    zero-shot score on the target task."""
    lines = ["## Domain transfer (the paper's Tables 1 and 2)", "",
             "A prompt trained on the source task, scored zero-shot on the target task (same label words, the "
             "source's input format). In-domain: the score the prompt's own run recorded for it on the source "
             "task's dev set (on the run's dev subset when its evaluations used one); saved at update: the update "
             "whose prompt the run kept (0: training never beat the initial prompt on dev).", "",
             "| source -> target | metric | in-domain (source dev) | saved at update | zero-shot on target | "
             "target examples | prompt | record |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        m = r["primary_metric"]
        source_dev = (r.get("source_dev_metric") or {}).get("metrics")
        step = (r.get("source_dev_metric") or {}).get("step", "-")
        lines.append(f"| {r['source']} -> {r['target']} | {m} | {_metric(source_dev, m)} | {step} | "
                     f"{_metric(r['metrics'], m)} | {r['examples']} | `{r['prompt']}` | `{r['_file']}` |")
    lines += ["", "Commands:", ""] + [f"    {r.get('command', '')}" for r in records]
    return "\n".join(lines) + "\n"

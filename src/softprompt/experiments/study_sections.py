"""The report's sections for prompt ensembles (the paper's Table 3), domain transfer (Tables 1
and 2) and model tuning's learning-rate check, each built from the JSON records the `ensemble --json`,
`transfer --json` and `model-tune --json` commands write (reports/ensembles/*.json,
reports/transfer/*.json, reports/model_lr_check/*.json); every number comes from a record, and each
record carries its command."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from softprompt.core.config import PRE_SETTING_VALUES, TrainConfig
from softprompt.errors import SoftPromptError
from softprompt.training.defaults import CPU_PROFILE


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


def record_model(record: dict) -> str:
    """The model a record was made with: its own field, else the --model of its command (records
    written before the field existed; every report command names its model)."""
    if record.get("model"):
        return str(record["model"])
    words = str(record.get("command", "")).split()
    for i, word in enumerate(words[:-1]):
        # `python -m softprompt...` names a module, not a model
        if word == "--model" or (word == "-m" and not (i and Path(words[i - 1]).name.startswith("python"))):
            return words[i + 1]
    return "-"


def _metric(metrics: dict | None, name: str) -> str:
    return "-" if not metrics or name not in metrics else f"{metrics[name]:.1f}"


def _metrics(metrics: dict | None, names: Sequence[str]) -> str:
    return " / ".join(_metric(metrics, name) for name in names)


def trained_summary(trained: Sequence[dict] | None) -> str:
    """The ensemble's prompts as trained ('20 tokens, class-label, 300 updates, lr 0.0515, seeds 0, 1'):
    one part per distinct setting, in order; '-' for a record that predates `trained`."""
    if not trained:
        return "-"
    groups: dict[tuple, list] = {}
    for t in trained:
        groups.setdefault((t.get("length"), t.get("init"), t.get("updates"), t.get("learning_rate")), []).append(t.get("seed"))
    parts = []
    for (length, init, updates, lr), seeds in groups.items():
        lr_text = "" if lr is None else f", lr {lr:g}"
        seed_text = ", ".join("?" if s is None else str(s) for s in seeds)
        parts.append(f"{length} tokens, {init}, {updates if updates is not None else '?'} updates{lr_text}, "
                     f"seed{'s' if len(seeds) > 1 else ''} {seed_text}")
    return "; ".join(parts)


def ensemble_section(records: Sequence[dict]) -> str:
    """Per ensemble record: each prompt's primary metric, their average, the best one, the
    majority-vote ensemble, and the shared pass's time against N separate passes."""
    lines = ["## Prompt ensembles (the paper's Table 3)", "",
             "N prompts of one task on the one frozen model, scored in one batched pass (each batch holds every "
             "example once per prompt). Average: the mean of the prompts' scores; best: the best single prompt "
             "(chosen on the same dev examples, so an upper bound); ensemble: majority vote of the prompts' "
             "answers (ties by summed log-likelihood). Prompts trained: as their files record it ('-': a record "
             "written before ensembles recorded it; the prompt paths below name the runs).", "",
             "| model | task | prompts | prompts trained | dev examples | each prompt | average | best | ensemble | shared pass (s) | "
             "N separate passes (s) | record |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        m = r["primary_metric"]
        each = ", ".join(_metric(p, m) for p in r["per_prompt"])
        separate = "-" if r.get("separate_seconds") is None else f"{r['separate_seconds']:.1f}"
        lines.append(f"| {record_model(r)} | {r['task']} | {len(r['per_prompt'])} | {trained_summary(r.get('trained'))} | "
                     f"{r['examples']} | {each} | {_metric(r['average'], m)} | "
                     f"{_metric(r['best'], m)} | {_metric(r['ensemble'], m)} | {r['seconds']:.1f} | {separate} | "
                     f"`{r['_file']}` |")
    lines += ["", "Prompts and commands:", ""]
    for r in records:
        lines.append(f"- {record_model(r)} / {r['task']}: " + ", ".join(f"`{p}`" for p in r.get("prompts", [])))
        lines.append(f"    {r.get('command', '')}")
    return "\n".join(lines) + "\n"


def transfer_section(records: Sequence[dict]) -> str:
    """Per transfer record (a prompt, or a model tuned on the source task): its in-domain dev score
    beside its zero-shot score on the target task; the two methods of one pair side by side."""
    lines = ["## Domain transfer (the paper's Tables 1 and 2)", "",
             "Trained on the source task, scored zero-shot on the target task (same label words, the source's "
             "input format). Prompt tuning: a prompt file; in-domain is its run's score of the kept prompt on "
             "the source task's dev examples (source dev examples: how many; '-': a record that only has the "
             "run's best evaluation, on its dev subset), saved at update: the update whose prompt the run kept "
             "(0: training never beat the initial prompt on dev). Model tuning: every weight of a copy of the "
             "same model, scored after its last update.", "",
             "| model | source -> target | method | metric | in-domain (source dev) | source dev examples | "
             "saved at update | zero-shot on target | target examples | trained | record |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    ordered = sorted(records, key=lambda r: (record_model(r), r["source"], r["target"],
                                             r.get("method", "prompt tuning") != "prompt tuning"))
    for r in ordered:
        # the primary metric first, then the task's others (MRPC's F1 beside accuracy, SQuAD's EM beside F1)
        names = [r["primary_metric"]] + sorted(k for k in r["metrics"] if k != r["primary_metric"])
        source_dev = (r.get("source_dev_metric") or {}).get("metrics")
        step = (r.get("source_dev_metric") or {}).get("step", "-")
        method = r.get("method", "prompt tuning")
        if r.get("prompt"):
            trained = f"`{r['prompt']}`"
        else:
            b = r.get("budget") or {}
            trained = (f"{b.get('trainable_parameters', 0) / 1e6:.0f}M weights, {b.get('updates')} updates of "
                       f"{b.get('batch_size')}, {b.get('optimizer')} lr {b.get('learning_rate')}")
        lines.append(f"| {record_model(r)} | {r['source']} -> {r['target']} | {method} | {' / '.join(names)} | "
                     f"{_metrics(source_dev, names)} | {(r.get('source_dev_metric') or {}).get('examples', '-')} | "
                     f"{step} | {_metrics(r['metrics'], names)} | {r['examples']} | "
                     f"{trained} | `{r['_file']}` |")
    lines += ["", "Commands:", ""] + [f"    {reproducing_command(r)}" for r in ordered]
    return "\n".join(lines) + "\n"


def model_lr_section(records: Sequence[dict], used: Mapping[tuple[str, str], float]) -> str:
    """Per `model-tune --json` record of the learning-rate check: its lr, budget, last logged loss and
    dev score; `used` maps (model, task) to the lr the results table's model tuning ran at (marked *)."""
    lines = ["### Model tuning's learning rate (a short check)", "",
             "Model tuning above runs AdamW at one constant lr. Each row: the same command for a few updates at "
             "another lr, scored after its last update on the dev examples stated; * marks the lr of the scale "
             "table's run. A short run shows which lr learns fastest, not which one ends best.", "",
             "| model | task | lr | updates (batch) | last logged loss | dev score | dev examples | record |",
             "|---|---|---|---|---|---|---|---|"]
    ordered = sorted(records, key=lambda r: (record_model(r), r["task"], r["config"]["learning_rate"]))
    for r in ordered:
        model, lr = record_model(r), r["config"]["learning_rate"]
        mark = " *" if used.get((model, r["task"])) == lr else ""
        loss = f"{r['losses'][-1][1]:.3f}" if r.get("losses") else "-"
        score = ", ".join(f"{k} {v:.1f}" for k, v in (r.get("final_metrics") or {}).items()) or "-"
        lines.append(f"| {model} | {r['task']} | {lr:g}{mark} | {r['steps']} ({r['config']['batch_size']}) | {loss} | "
                     f"{score} | {r['dev_examples']} | `{r['_file']}` |")
    lines += ["", "Commands:", ""] + [f"    {reproducing_command(r)}" for r in ordered]
    return "\n".join(lines) + "\n"


# settings that name files or record how a run was started, not what it trained with
_NOT_SETTINGS = {"extra", "init_file"}


def with_batching_flag(command: str, train: dict) -> str:
    """`command` with --group-by-length / --random-batches and --length-bands / --no-length-bands
    added where the run's batching (`train`: its recorded train settings; runs from before a
    setting existed have PRE_SETTING_VALUES's) is not what the command gives today on a CPU, where
    the report's runs ran: rerun as printed, it computes what the run computed."""
    grouped = bool(train.get("group_by_length", PRE_SETTING_VALUES["group_by_length"]))
    if grouped != TrainConfig.group_by_length and "--random-batches" not in command and "--group-by-length" not in command:
        command += " --group-by-length" if grouped else " --random-batches"
    return _with_bands_flag(command, bool(train.get("length_bands", PRE_SETTING_VALUES["length_bands"])), "length-bands")


def _with_bands_flag(command: str, bands: bool, flag: str) -> str:
    """`command` with --flag / --no-flag added where the run's length-bands setting is not the CPU
    default and the command names no length-bands flag yet."""
    if bands == CPU_PROFILE.length_bands or "-length-bands" in command:
        return command
    return f"{command} --{'' if bands else 'no-'}{flag}"


def model_tuning_bands(record: dict) -> bool:
    """Whether a model-tuning record (report-run's `model`, a `model-tune --json` record or its
    transfer record) computed its batches in length bands; records from before the setting did not."""
    for where in (record, record.get("config") or {}, record.get("budget") or {}):
        if "length_bands" in where:
            return bool(where["length_bands"])
    return bool(PRE_SETTING_VALUES["length_bands"])


def reproducing_command(record: dict) -> str:
    """A record's command, with the batching flags added where its run computed other than the
    command does today on a CPU (a run recorded under another default reproduces only with them):
    with_batching_flag for a prompt-tuning run; --(no-)length-bands for `model-tune`,
    --(no-)model-length-bands for report-run's model tuning."""
    command = str(record.get("command", ""))
    train = (record.get("settings") or {}).get("train")
    if record.get("method") == "defaults" and train is not None:
        return with_batching_flag(command, train)
    tuning_cli = " model-tune " in f" {command} "
    if tuning_cli or record.get("method") == "model":
        return _with_bands_flag(command, model_tuning_bands(record), "length-bands" if tuning_cli else "model-length-bands")
    return command


def load_variant_runs(folder: str | Path | None) -> list[dict]:
    """The runs under folder/<model>/<task>/<name>/ (a `softprompt train` run's result.json and
    metrics.jsonl, copied from its run folder), in path order."""
    if folder is None or not Path(folder).is_dir():
        return []
    runs = []
    for path in sorted(Path(folder).glob("*/*/*/result.json")):
        model, task, name = path.parent.relative_to(folder).parts
        try:
            runs.append({"model": model, "task": task, "name": name, "result": json.loads(path.read_text()),
                         "_file": str(path)})
        except json.JSONDecodeError as err:
            raise SoftPromptError(f"{path}: not valid JSON ({err})") from None
    return runs


def changed_settings(defaults: dict | None, variant: dict | None) -> list[str]:
    """'name: default -> variant' for every prompt / train setting the two runs' settings differ in
    (a run from before a setting existed had PRE_SETTING_VALUES's value; otherwise unknown: '?')."""
    out = []
    for group in ("prompt", "train"):
        base, other = (defaults or {}).get(group, {}), (variant or {}).get(group, {})
        for key in sorted(set(base) | set(other)):
            was, now = (d.get(key, PRE_SETTING_VALUES.get(key, "?")) for d in (base, other))
            if key not in _NOT_SETTINGS and was != now:
                out.append(f"{key}: {was} -> {now}")
    return out


def variant_section(runs: Sequence[dict], results_by_model: dict[str, dict],
                    metric_names: Mapping[str, tuple[str, ...]]) -> str:
    """Each variant run beside the defaults run of the same model and task (the results table's prompt
    tuning) and the zero-shot prompt design: what changed, and the final score on the whole dev set."""
    lines = ["## Prompt tuning with a setting changed", "",
             "A `softprompt train` run with one or more settings changed from the defaults, beside the defaults run of "
             "the results table (same model, task and dev set). Changed: every setting the two runs' result.json "
             "differ in. Batching was left at the paper's random batches after the first paired runs below scored "
             "lower with length grouping: that choice saw these dev scores, and it keeps the paper's method "
             "rather than tuning one. No other default did.", "",
             "| model | task | changed | prompt design | prompt tuning (defaults) | prompt tuning (changed) | "
             "best at update | wall time (defaults -> changed) | record |",
             "|---|---|---|---|---|---|---|---|---|"]
    def cell(metrics: dict | None, names: Sequence[str]) -> str:
        return "/".join(_metric(metrics, n) for n in names) if metrics else "-"

    commands = []
    for run in runs:
        task_rec = results_by_model.get(run["model"], {}).get("tasks", {}).get(run["task"], {})
        defaults, design = task_rec.get("defaults") or {}, task_rec.get("design") or {}
        result = run["result"]
        # the whole dev set: the final score, or the evaluations' own when they already covered it
        scored = result.get("final_metrics") or result.get("best_metrics")
        names = metric_names.get(run["task"], ("accuracy",))

        changed = "; ".join(changed_settings(defaults.get("settings"), result.get("settings"))) or "nothing"
        base_time = f"{defaults['wall_seconds'] / 60:.1f}" if defaults.get("wall_seconds") else "-"
        seconds = result.get("seconds", 0.0) + (result.get("run") or {}).get("model_load_seconds", 0.0)
        lines.append(f"| {run['model']} | {run['task']} | {changed} | {cell(design.get('metrics'), names)} | "
                     f"{cell(defaults.get('metrics'), names)} | {cell(scored, names)} | "
                     f"{result.get('best_step', '-')} | {base_time} -> {seconds / 60:.1f} min | `{run['_file']}` |")
        command = (result.get("run") or {}).get("command")
        if command:
            commands.append(f"    {with_batching_flag(command, (result.get('settings') or {}).get('train', {}))}")
    if commands:
        lines += ["", "Commands:", ""] + commands
    return "\n".join(lines) + "\n"

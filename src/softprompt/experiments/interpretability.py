"""What trained prompts learned (the paper's section 7), measured on saved prompt files.

For each prompt [p, embed]:
  * the nearest vocabulary tokens of every row (cosine over the input embeddings);
  * for class-label-initialised prompts, how many of the label-initialised rows still have a
    label word among their top-5 neighbours after training (the paper: they mostly do);
  * how far each row moved from its initial value (cosine between the row at step 0, rebuilt
    from the recorded init and seed, and the trained row);
  * how similar the rows are to one another (the [p, p] cosine matrix, drawn as a heat map):
    the paper saw groups of rows with the same neighbours.

    analyse_prompt(lm, path) -> PromptAnalysis
    analyse_prompts(paths, load) -> one PromptAnalysis per file, each on the model its file names
    write_report(analyses, out_dir) -> the markdown and JSON records and one figure per prompt
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, cast

import torch

from softprompt.core.config import PromptConfig
from softprompt.core.model import PromptedLM
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import load_prompt, read_prompt
from softprompt.evaluation.neighbours import nearest_tokens
from softprompt.fileio import atomic_write

TOP_K = 5


@dataclass
class PromptAnalysis:
    prompt_path: str
    model: str
    task: str | None
    init: str
    length: int
    label_words: list[str]
    neighbours: list[list[tuple[str, float]]]  # per row: the TOP_K nearest tokens and their cosine
    label_rows: int  # rows initialised from a label word (class-label init), else 0
    label_rows_keeping_a_label: int  # of those, rows with a label word among their TOP_K neighbours
    rows_with_a_label: int  # all rows with a label word among their TOP_K neighbours
    init_cosine: list[float] | None  # per row: cosine(initial row, trained row); None if not rebuilt
    row_similarity: list[list[float]]  # [p, p] cosine between trained rows
    mean_top1_cosine: float
    mean_offdiagonal_similarity: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_label(token: str, label_words: Sequence[str]) -> bool:
    words = {w.strip().lower() for w in label_words}
    return token.strip().lower() in words and token.strip() != ""


def _initial_rows(lm: PromptedLM, path: Path, init: str, length: int, label_words: Sequence[str],
                  seed: int) -> torch.Tensor | None:
    """The prompt at step 0, rebuilt from the run's recorded prompt settings (result.json next to
    the prompt file) or the file's init and seed; None for inits that cannot be rebuilt."""
    if init not in ("class-label", "sampled-vocab", "random-uniform"):
        return None
    config = PromptConfig(length=length, init=cast(Any, init))
    result = path.parent / "result.json"
    if result.is_file():
        recorded = json.loads(result.read_text()).get("settings", {}).get("prompt")
        if recorded:
            config = PromptConfig(**{**recorded, "length": length, "init": init})
    return SoftPrompt.initialise(lm, config, label_words, seed=seed).weight.detach()


@torch.no_grad()
def analyse_prompt(lm: PromptedLM, prompt_path: str | Path) -> PromptAnalysis:
    path = Path(prompt_path)
    saved = load_prompt(path, lm)
    meta = saved.metadata
    rows = saved.tensor.float()
    label_words = list(meta.label_words or [])
    neighbours = nearest_tokens(lm, rows, k=TOP_K)
    has_label = [any(_is_label(tok, label_words) for tok, _ in row) for row in neighbours]
    label_rows = min(len(label_words), len(rows)) if meta.init == "class-label" else 0
    initial = _initial_rows(lm, path, meta.init, len(rows), label_words, int(meta.train_settings.get("seed", 0)))
    init_cosine = None
    if initial is not None:
        init_cosine = torch.nn.functional.cosine_similarity(initial.float(), rows, dim=-1).tolist()
    unit = torch.nn.functional.normalize(rows, dim=-1)
    similarity = unit @ unit.T
    p = len(rows)
    offdiag = (similarity.sum() - similarity.diagonal().sum()) / max(1, p * p - p)
    return PromptAnalysis(
        prompt_path=str(path), model=meta.model_id, task=meta.task, init=meta.init, length=p,
        label_words=label_words, neighbours=neighbours, label_rows=label_rows,
        label_rows_keeping_a_label=sum(has_label[:label_rows]), rows_with_a_label=sum(has_label),
        init_cosine=init_cosine, row_similarity=similarity.tolist(),
        mean_top1_cosine=sum(row[0][1] for row in neighbours) / p, mean_offdiagonal_similarity=float(offdiag),
    )


def analyse_prompts(paths: Sequence[str | Path], load: Callable[[str], PromptedLM],
                    model: str | None = None) -> list[PromptAnalysis]:
    """analyse_prompt for each file, on `model` or else on the model the file names (prompts of
    several models in one report; each model loaded once, by `load(name)`)."""
    loaded: dict[str, PromptedLM] = {}
    analyses = []
    for path in paths:
        name = model or read_prompt(path).metadata.model_id
        if name not in loaded:
            loaded[name] = load(name)
        analyses.append(analyse_prompt(loaded[name], path))
    return analyses


def _figure(analysis: PromptAnalysis, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    p = analysis.length
    fig, (heat, bars) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [1.1, 1]})
    image = heat.imshow(analysis.row_similarity, vmin=-1, vmax=1, cmap="coolwarm")
    heat.set_title("cosine similarity between prompt rows")
    heat.set_xlabel("prompt row")
    heat.set_ylabel("prompt row")
    fig.colorbar(image, ax=heat, label="cosine")
    index = list(range(p))
    bars.bar([i - 0.2 for i in index], [row[0][1] for row in analysis.neighbours], width=0.4,
             label="nearest token (after training)")
    if analysis.init_cosine is not None:
        bars.bar([i + 0.2 for i in index], analysis.init_cosine, width=0.4, label="its own initial value")
    bars.set_ylim(-0.2, 1.05)
    bars.set_xlabel("prompt row")
    bars.set_ylabel("cosine similarity of the trained row to ...")
    bars.set_title("rows vs vocabulary and vs their start")
    bars.legend(loc="lower right", fontsize=8)
    for axis in (heat.xaxis, heat.yaxis, bars.xaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{analysis.model} / {analysis.task}: {p} rows, init {analysis.init}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def _cell(token: str) -> str:
    """A token, readable inside a markdown table cell."""
    shown = token.strip() or repr(token)
    return "`" + shown.replace("`", "'").replace("|", "\\|") + "`"


def figure_name(analysis: PromptAnalysis, taken: set[str] | None = None) -> str:
    """interpretability_<model>_<task>_<init>_p<length>.png; a name already in `taken` (two prompts
    alike in all four, e.g. two seeds) gets -2, -3, ... so no figure overwrites another."""
    stem = f"interpretability_{analysis.model}_{analysis.task}_{analysis.init}_p{analysis.length}".replace("/", "-")
    name, k = f"{stem}.png", 1
    while taken is not None and name in taken:
        k += 1
        name = f"{stem}-{k}.png"
    if taken is not None:
        taken.add(name)
    return name


def write_report(analyses: Sequence[PromptAnalysis], out_dir: str | Path, figures_dir: str | Path,
                 command: str) -> Path:
    """reports/interpretability.{json,md} and one figure per prompt; returns the markdown path."""
    out, figures = Path(out_dir), Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"command": command, "top_k": TOP_K, "prompts": [a.to_dict() for a in analyses]}
    atomic_write(out / "interpretability.json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))
    lines = [
        "# What the trained prompts learned (nearest tokens, label words, row similarity)",
        "",
        f"Generated by `{command}` from the prompt files named below; records in `interpretability.json`.",
        f"Neighbours: the {TOP_K} vocabulary tokens with the highest cosine similarity to a row (input embeddings).",
        "",
        "| model | task | init | rows | label-initialised rows with a label word in their top-5 after training | "
        "all rows with a label word in their top-5 | mean cosine to the nearest token | "
        "mean cosine, row to its initial value | mean cosine between rows |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in analyses:
        kept = f"{a.label_rows_keeping_a_label} of {a.label_rows}" if a.label_rows else "-"
        init_cos = f"{sum(a.init_cosine) / len(a.init_cosine):.3f}" if a.init_cosine else "-"
        lines.append(f"| {a.model} | {a.task} | {a.init} | {a.length} | {kept} | {a.rows_with_a_label} of {a.length} | "
                     f"{a.mean_top1_cosine:.3f} | {init_cos} | {a.mean_offdiagonal_similarity:.3f} |")
    taken: set[str] = set()
    for a in analyses:
        figure = figures / figure_name(a, taken)
        _figure(a, figure)
        rel = Path(os.path.relpath(figure, out))
        lines += ["", f"## {a.model} / {a.task} ({a.init}, `{a.prompt_path}`)", "", f"![{a.task}]({rel.as_posix()})", "",
                  "| row | nearest tokens (cosine) |", "|---|---|"]
        for i, row in enumerate(a.neighbours):
            cells = ", ".join(f"{_cell(tok)} {cos:.2f}" for tok, cos in row)
            lines.append(f"| {i} | {cells} |")
    path = out / "interpretability.md"
    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    return path

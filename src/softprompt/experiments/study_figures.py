"""The figures of the report's ensemble (the paper's Table 3) and domain-transfer (Tables 1-2)
sections, drawn from the same JSON records as their tables (study_sections.py), so a figure can
never show a number its table does not.

    ensemble_figure(records, out)   per model / task: each prompt, their average, the best one, the vote
    transfer_figure(records, out)   per model / pair: in-domain vs zero-shot, prompt vs model tuning
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from softprompt.experiments.study_sections import record_model
from softprompt.fileio import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    return out


def ensemble_rows(records: Sequence[dict]) -> list[dict]:
    """Per ensemble record, what its figure row draws: a label, each prompt's primary metric, their
    average, the best single prompt and the majority-vote ensemble."""
    rows = []
    for r in records:
        m = r["primary_metric"]
        updates = sorted({t.get("updates") for t in r.get("trained") or []} - {None})
        budget = f", prompts of {'/'.join(map(str, updates))} updates" if updates else ""
        rows.append({"label": f"{record_model(r)} / {r['task']}\n({r['examples']} dev examples{budget})", "metric": m,
                     "each": [p[m] for p in r["per_prompt"]], "average": r["average"][m], "best": r["best"][m],
                     "ensemble": r["ensemble"][m]})
    return rows


def ensemble_figure(records: Sequence[dict], out: Path) -> Path:
    """One row per model / task: each prompt's score (grey dots), their average, the best prompt and
    the ensemble of all of them, on one metric axis."""
    plt = _pyplot()
    rows = ensemble_rows(records)
    fig, ax = plt.subplots(figsize=(8.4, 1.9 + 0.9 * len(rows)))
    for y, row in enumerate(rows):
        ax.scatter(row["each"], [y] * len(row["each"]), color="0.6", s=30, zorder=2,
                   label="each prompt" if y == 0 else None)
        ax.scatter([row["average"]], [y], marker="|", s=400, color="C0", zorder=3, label="average" if y == 0 else None)
        ax.scatter([row["best"]], [y + 0.18], marker="v", s=50, color="C2", zorder=3,
                   label="best single prompt (chosen on these examples)" if y == 0 else None)
        ax.scatter([row["ensemble"]], [y - 0.18], marker="*", s=120, color="C3", zorder=3,
                   label="ensemble (majority vote)" if y == 0 else None)
    ax.set_yticks(range(len(rows)), [row["label"] for row in rows], fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    metrics = sorted({row["metric"] for row in rows})
    ax.set_xlabel(f"{' / '.join(metrics)} on dev (%)")
    ax.grid(axis="x", alpha=0.3)
    counts = sorted({len(row["each"]) for row in rows})
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    ax.set_title(f"prompt ensembles: {n} prompts on one frozen model, scored in one batched pass", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)


def transfer_groups(records: Sequence[dict]) -> dict[str, dict[str, tuple[float | None, float]]]:
    """'model: source -> target (metric)' -> method -> (in-domain score on the source's dev set, or
    None where the record has none; zero-shot score on the target), primary metric."""
    groups: dict[str, dict[str, tuple[float | None, float]]] = {}
    for r in sorted(records, key=lambda r: (record_model(r), r["source"], r["target"])):
        m = r["primary_metric"]
        source_dev = (r.get("source_dev_metric") or {}).get("metrics") or {}
        key = f"{record_model(r)}: {r['source']} -> {r['target']} ({m})"
        groups.setdefault(key, {})[r.get("method", "prompt tuning")] = (source_dev.get(m), r["metrics"][m])
    return groups


def transfer_figure(records: Sequence[dict], out: Path) -> Path:
    """One panel per model / pair: for each method a bar for its in-domain score and one for its
    zero-shot score on the target; the drop between the two is what the paper compares."""
    plt = _pyplot()
    groups = transfer_groups(records)
    methods = ("prompt tuning", "model tuning")
    fig, axes = plt.subplots(1, len(groups), figsize=(2.9 * len(groups) + 0.6, 3.6), sharey=True, squeeze=False)
    for ax, (title, by_method) in zip(axes.flat, groups.items()):
        for i, method in enumerate(methods):
            if method not in by_method:  # an empty slot would read as a score of 0
                ax.text(i, 2, "not run", ha="center", fontsize=7, color="0.4")
            # k = 0: in-domain (solid), k = 1: zero-shot on the target (hatched)
            for k, value in enumerate(by_method.get(method, (None, None))):
                if value is None:
                    continue
                x = i + (k - 0.5) * 0.38
                ax.bar(x, value, width=0.36, color=f"C{i * 3}", hatch="//" if k else None, edgecolor="white",
                       alpha=0.6 if k else 0.9)
                ax.text(x, value + 1, f"{value:.1f}", ha="center", fontsize=7)
        ax.set_xticks(range(len(methods)), methods, fontsize=8)
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_title(title, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel("dev, primary metric (%)", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor="0.5", alpha=0.9),
               plt.Rectangle((0, 0), 1, 1, facecolor="0.5", alpha=0.6, hatch="//", edgecolor="white")]
    fig.legend(handles, ["in-domain (source dev)", "zero-shot on the target"], loc="lower center", ncol=2,
               fontsize=8, frameon=False)
    fig.suptitle("domain transfer: trained on the source task, scored zero-shot on the target", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)

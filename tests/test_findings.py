"""The README's findings are sentences written from the committed records; these tests hold each
sentence's claim against the records it cites, so a rerun that changes a record cannot leave the
README saying something the numbers no longer show."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SMALL, LARGE = "smollm2", "gemma3-270m"


def _results() -> dict[str, dict]:
    return {m: json.loads((ROOT / "reports" / "results" / f"{m}.json").read_text())["tasks"] for m in (SMALL, LARGE)}


def _primary(results: dict, model: str, task: str, method: str) -> float | None:
    record = results[model].get(task, {}).get(method)
    return None if record is None else record["primary"]


def _finding(name: str) -> str:
    start = README.index(f"- *{name}*")
    end = README.find("\n- *", start + 1)
    return " ".join(README[start:end if end > 0 else None].split())


def test_scale_finding_names_the_tasks_where_the_larger_model_prompt_tunes_higher():
    results = _results()
    shared = sorted(set(results[SMALL]) & set(results[LARGE]))
    higher = {t for t in shared if _primary(results, LARGE, t, "defaults") > _primary(results, SMALL, t, "defaults")}
    assert higher == {"sst2", "rte", "copa"}
    assert "higher than SmolLM2 on SST-2, RTE and COPA but not on CB, MRPC, WiC or WSC" in _finding("Scale")
    # "on the last three neither model's prompt ends more than about a point above the majority class"
    for model in (SMALL, LARGE):
        for task in ("mrpc", "wic", "wsc"):
            assert _primary(results, model, task, "defaults") - _primary(results, model, task, "majority") <= 1.5


def test_scale_finding_on_the_gap_between_model_and_prompt_tuning():
    results = _results()
    both = [t for t in results[SMALL] if _primary(results, SMALL, t, "model") is not None
            and _primary(results, LARGE, t, "model") is not None]
    assert both == ["sst2"]
    gap = {m: _primary(results, m, "sst2", "model") - _primary(results, m, "sst2", "defaults") for m in (SMALL, LARGE)}
    assert gap[SMALL] > 0 > gap[LARGE]  # model tuning leads on the small model and trails on the larger one
    sentence = _finding("Scale")
    assert "model tuning leads prompt tuning on SmolLM2 and trails it on Gemma 3" in sentence
    # the lr check: Gemma's model tuning scores best at the lowest lr and falls as the lr grows
    assert "scores highest at the lowest lr tried and lower at every larger one" in sentence
    checks = [json.loads(p.read_text()) for p in (ROOT / "reports" / "model_lr_check").glob(f"{LARGE}-sst2-*.json")]
    by_lr = sorted((c["config"]["learning_rate"], c["final_metrics"]["accuracy"]) for c in checks)
    assert len(by_lr) >= 3 and all(c["steps"] == 60 for c in checks) and "(60 updates per lr)" in sentence
    scores = [score for _, score in by_lr]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]
    assert results[LARGE]["sst2"]["model"]["learning_rate"] in [lr for lr, _ in by_lr[1:]]  # "including the lr of its run"
    small = {c["config"]["learning_rate"]: c["final_metrics"]["accuracy"] for c in
             (json.loads(p.read_text()) for p in (ROOT / "reports" / "model_lr_check").glob(f"{SMALL}-sst2-*.json"))}
    assert "(on SmolLM2 the same check scores its run's lr highest)" in sentence
    assert len(small) >= 3 and max(small, key=small.__getitem__) == results[SMALL]["sst2"]["model"]["learning_rate"]
    assert "(300 updates each)" in sentence
    assert [results[m]["sst2"]["model"]["steps"] for m in (SMALL, LARGE)] == [300, 300]


def _ablation(model: str, task: str = "sst2") -> dict[tuple[int, str], float]:
    """(length, init) -> mean primary metric over the record's seeds."""
    cells = json.loads((ROOT / "reports" / "ablation" / f"{model}-{task}.json").read_text())["cells"].values()
    by_cell: dict[tuple[int, str], list[float]] = {}
    for c in cells:
        by_cell.setdefault((c["length"], c["init"]), []).append(c["primary"])
    return {k: sum(v) / len(v) for k, v in by_cell.items()}


def test_length_and_init_finding():
    sentence = _finding("Prompt length and init")
    inits, lengths = ("random-uniform", "sampled-vocab", "class-label"), (1, 5, 20, 100)
    small, large = _ablation(SMALL), _ablation(LARGE)
    assert set(small) == set(large) == {(n, i) for n in lengths for i in inits}
    # SmolLM2: length 1 lowest for every init, lengths 5-100 within a few points, inits differ most at length 1
    assert "on SmolLM2 a one-token prompt learns least and lengths 5 to 100 end within a few points" in sentence
    for i in inits:
        assert small[(1, i)] < min(small[(n, i)] for n in lengths[1:])
        assert max(small[(n, i)] for n in lengths[1:]) - min(small[(n, i)] for n in lengths[1:]) <= 3
    spread = {n: max(small[(n, i)] for i in inits) - min(small[(n, i)] for i in inits) for n in lengths}
    assert max(spread, key=spread.__getitem__) == 1
    assert small[(1, "random-uniform")] == min(small[(1, i)] for i in inits)
    # Gemma 3: random-uniform lowest at every length, far behind at 100; the informed inits close together
    assert "on Gemma 3 random-uniform is the lowest init at every length" in sentence
    for n in lengths:
        assert large[(n, "random-uniform")] < min(large[(n, "sampled-vocab")], large[(n, "class-label")])
        assert abs(large[(n, "sampled-vocab")] - large[(n, "class-label")]) <= 3
    assert large[(100, "random-uniform")] < min(large[(100, "sampled-vocab")], large[(100, "class-label")]) - 20
    # RTE on SmolLM2: nothing learns in 100 updates; one-token prompts highest; longer ones at or below majority
    rte, majority = _ablation(SMALL, "rte"), _primary(_results(), SMALL, "rte", "majority")
    assert majority is not None and set(rte) == {(n, i) for n in lengths for i in inits}
    assert "no cell ends 5 points above the majority class" in sentence
    assert max(rte.values()) < majority + 5
    for i in inits:
        assert rte[(1, i)] == max(rte[(n, i)] for n in lengths)
        assert all(rte[(n, i)] <= majority for n in lengths[1:])
    assert "model tuning reaches 69.0 there in 300 updates" in sentence
    model = _results()[SMALL]["rte"]["model"]
    assert (round(model["primary"], 1), model["steps"]) == (69.0, 300)


def _ensemble(model: str) -> dict:
    return json.loads((ROOT / "reports" / "ensembles" / f"{model}-sst2.json").read_text())


def test_ensemble_finding():
    sentence = _finding("Ensembles")
    acc = {m: {k: _ensemble(m)[k]["accuracy"] for k in ("average", "best", "ensemble")} for m in (SMALL, LARGE)}
    assert "on Gemma 3 the majority vote of the five beats both their average and the best single prompt" in sentence
    assert acc[LARGE]["ensemble"] > acc[LARGE]["best"] > acc[LARGE]["average"]
    assert "on SmolLM2 it only equals the average and stays below the best prompt" in sentence
    assert acc[SMALL]["ensemble"] == pytest.approx(acc[SMALL]["average"]) and acc[SMALL]["ensemble"] < acc[SMALL]["best"]
    for m in (SMALL, LARGE):
        record = _ensemble(m)
        assert len(record["per_prompt"]) == 5
        # "about as long as five separate passes": within 15% either way
        assert 0.85 <= record["seconds"] / record["separate_seconds"] <= 1.15


def test_interpretability_finding():
    sentence = _finding("Interpretability")
    prompts = json.loads((ROOT / "reports" / "interpretability.json").read_text())["prompts"]
    assert {p["model"] for p in prompts} == {SMALL, LARGE}
    labelled = [p for p in prompts if p["init"] == "class-label"]
    short = {(p["model"], p["task"]): p["label_rows"] - p["label_rows_keeping_a_label"] for p in labelled}
    assert {k: v for k, v in short.items() if v} == {(SMALL, "cb"): 1, (LARGE, "cb"): 1}
    assert "all but one of CB's three, on each model" in sentence
    assert all(p["label_rows"] == 3 for p in labelled if p["task"] == "cb")
    informed = [p for p in prompts if p["init"] != "random-uniform"]
    assert min(p["mean_top1_cosine"] for p in informed) > 0.85  # near a token
    assert min(sum(p["init_cosine"]) / len(p["init_cosine"]) for p in informed) > 0.85  # near where they started
    uniform = [p for p in prompts if p["init"] == "random-uniform"]
    assert {p["model"] for p in uniform} == {SMALL, LARGE}
    assert max(p["mean_top1_cosine"] for p in uniform) < 0.2  # far from every token
    assert max(abs(p["mean_offdiagonal_similarity"]) for p in uniform) < 0.01  # uncorrelated rows
    # "on SmolLM2 such a prompt still learns SST-2 about as well as the others, on Gemma 3 it ends lowest"
    small, large = _ablation(SMALL), _ablation(LARGE)
    assert small[(20, "random-uniform")] >= max(small[(20, i)] for i in ("sampled-vocab", "class-label")) - 1
    assert large[(20, "random-uniform")] < min(large[(20, i)] for i in ("sampled-vocab", "class-label"))
    assert "on SmolLM2 such a prompt still learns SST-2 about as well as the others, on Gemma 3 it ends lowest" in sentence


def _transfer(name: str) -> dict:
    record = json.loads((ROOT / "reports" / "transfer" / f"smollm2-{name}.json").read_text())
    return {"zero_shot": record["metrics"][record["primary_metric"]],
            "in_domain": record["source_dev_metric"]["metrics"][record["primary_metric"]],
            "step": record["source_dev_metric"]["step"], "method": record.get("method", "prompt tuning")}


def test_transfer_finding():
    sentence = _finding("Domain transfer")
    assert "model tuning scores higher zero-shot than prompt tuning in both directions" in sentence
    assert "300 updates of 8 for both methods" in sentence
    for pair in ("qqp-to-mrpc", "mrpc-to-qqp"):
        budget = json.loads((ROOT / "reports" / "transfer" / f"smollm2-{pair}-model-tuning.json").read_text())["budget"]
        assert (budget["updates"], budget["batch_size"]) == (300, 8)
    for pair in ("qqp-to-mrpc", "mrpc-to-qqp"):
        prompt, model = _transfer(pair), _transfer(f"{pair}-model-tuning")
        assert (prompt["method"], model["method"]) == ("prompt tuning", "model tuning")
        assert model["zero_shot"] > prompt["zero_shot"]
    assert _transfer("qqp-to-mrpc")["step"] == 0  # "never beat its untrained initial prompt"
    mrpc_prompt, mrpc_model = _transfer("mrpc-to-qqp"), _transfer("mrpc-to-qqp-model-tuning")
    assert mrpc_prompt["in_domain"] > mrpc_model["in_domain"]  # "higher than model tuning in-domain"
    assert mrpc_model["zero_shot"] - mrpc_prompt["zero_shot"] > 0  # "falls further on QQP"
    assert (mrpc_prompt["in_domain"] - mrpc_prompt["zero_shot"]) > (mrpc_model["in_domain"] - mrpc_model["zero_shot"])


@pytest.mark.parametrize("name, section", [("Prompt length and init", "Prompt length and initialisation"),
                                           ("Scale", "Scale"), ("Ensembles", "Prompt ensembles"), ("Domain transfer", "Domain transfer")])
def test_each_finding_cites_a_section_the_report_has(name, section):
    assert f'(section "{section}"' in _finding(name)
    report = (ROOT / "reports" / "results.md").read_text()
    assert f"\n## {section} (" in report

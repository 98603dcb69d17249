"""The README's findings are sentences written from the committed records; these tests hold each
sentence's claim against the records it cites, so a rerun that changes a record cannot leave the
README saying something the numbers no longer show."""
import json
import math
import re
from pathlib import Path

import pytest

from softprompt.tasks.metrics import accuracy_standard_error
from softprompt.training.defaults import CPU_PROFILE

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SMALL, LARGE = "smollm2", "gemma3-270m"


def _results() -> dict[str, dict]:
    return {m: json.loads((ROOT / "reports" / "results" / f"{m}.json").read_text())["tasks"] for m in (SMALL, LARGE)}


def _primary(results: dict, model: str, task: str, method: str) -> float | None:
    record = results[model].get(task, {}).get(method)
    return None if record is None else record["primary"]


def _baseline(results: dict, model: str, task: str) -> float:
    """The better of the majority class and the zero-shot design (a task without a majority record: the design)."""
    return max(v for v in (_primary(results, model, task, k) for k in ("majority", "design")) if v is not None)


def _gaps(results: dict) -> dict[tuple[str, str], float]:
    """(model, task) -> model tuning minus prompt tuning, where both are recorded."""
    return {(m, t): _primary(results, m, t, "model") - _primary(results, m, t, "defaults")
            for m in (SMALL, LARGE) for t in results[m] if _primary(results, m, t, "model") is not None}


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
    assert sorted(both) == ["cb", "copa", "mrpc", "rte", "sst2", "wic", "wsc"]
    gap = {m: _primary(results, m, "sst2", "model") - _primary(results, m, "sst2", "defaults") for m in (SMALL, LARGE)}
    sentence = _finding("Scale")
    assert "On SST-2, RTE, COPA, WSC, WiC, MRPC and CB, the tasks with model tuning on both models" in sentence
    # WSC: model tuning at the minority class's share on both models, its loss at chance, below the prompts
    wsc = {m: {k: _primary(results, m, "wsc", k) for k in ("model", "defaults", "majority")} for m in (SMALL, LARGE)}
    assert all(w["model"] == pytest.approx(100 - w["majority"]) and w["model"] < w["defaults"] for w in wsc.values())
    wsc_loss = [f"{results[m]['wsc']['model']['losses'][-1][1]:.2f}" for m in (SMALL, LARGE)]
    assert all(abs(float(v) - 0.693) < 0.05 for v in wsc_loss)
    assert f"model tuning ends at {wsc[SMALL]['model']:.1f} on both models, the minority class's share of the " \
        f"{results[SMALL]['wsc']['model']['dev_examples']} dev examples, with its last logged loss ({wsc_loss[0]} and " \
        f"{wsc_loss[1]}) at chance (ln 2 = 0.69), below the prompts ({wsc[SMALL]['defaults']:.1f} and " \
        f"{wsc[LARGE]['defaults']:.1f})" in sentence
    assert [results[m]["wsc"]["model"]["steps"] for m in (SMALL, LARGE)] == [300, 300]
    # COPA: model tuning no higher than prompt tuning on either model, both at or below the zero-shot design
    copa = {m: {k: _primary(results, m, "copa", k) for k in ("model", "defaults", "design")} for m in (SMALL, LARGE)}
    assert all(c["model"] <= c["defaults"] <= c["design"] for c in copa.values())
    assert "On COPA there is no gap to narrow: model tuning ends no higher than prompt tuning on either model " \
        f"({copa[SMALL]['model']:.1f} against {copa[SMALL]['defaults']:.1f} on SmolLM2, {copa[LARGE]['model']:.1f} " \
        f"against {copa[LARGE]['defaults']:.1f} on Gemma 3" in sentence
    dev = results[SMALL]["copa"]["model"]["dev_examples"]
    assert dev == results[LARGE]["copa"]["model"]["dev_examples"] == 100 and "100-example dev set is about 5 points" in sentence
    assert 4.5 < accuracy_standard_error(64.0, dev) < 5.5
    train = results[SMALL]["copa"]["model"]["train_examples"]
    losses = [f"{results[m]['copa']['model']['losses'][-1][1]:.2f}" for m in (SMALL, LARGE)]
    assert train == 400 and f"fits the {train} training examples (last logged loss {losses[0]} and {losses[1]})" in sentence
    assert [results[m]["copa"]["model"]["steps"] for m in (SMALL, LARGE)] == [300, 300]
    assert [results[m]["copa"]["model"]["learning_rate"] for m in (SMALL, LARGE)] == \
        [results[m]["sst2"]["model"]["learning_rate"] for m in (SMALL, LARGE)]
    # RTE: the gap narrows with size, from both sides
    rte = {m: {k: _primary(results, m, "rte", k) for k in ("model", "defaults")} for m in (SMALL, LARGE)}
    rte_gap = {m: rte[m]["model"] - rte[m]["defaults"] for m in (SMALL, LARGE)}
    assert rte_gap[SMALL] > rte_gap[LARGE] > 0
    assert f"on RTE it leads by {rte_gap[SMALL]:.1f} points on SmolLM2 and {rte_gap[LARGE]:.1f} on Gemma 3" in sentence
    assert rte[LARGE]["defaults"] > rte[SMALL]["defaults"] and rte[LARGE]["model"] < rte[SMALL]["model"]
    assert f"Gemma 3's prompt ends higher ({rte[LARGE]['defaults']:.1f} against {rte[SMALL]['defaults']:.1f}) and its " \
        f"model tuning lower ({rte[LARGE]['model']:.1f} against {rte[SMALL]['model']:.1f})" in sentence
    assert [results[m]["rte"]["model"]["learning_rate"] for m in (SMALL, LARGE)] == \
        [results[m]["sst2"]["model"]["learning_rate"] for m in (SMALL, LARGE)]  # the SST-2 check's lr
    assert [results[m]["rte"]["model"]["steps"] for m in (SMALL, LARGE)] == [300, 300]
    # WiC: the gap narrows with size, every dev example scored
    wic = {m: {k: _primary(results, m, "wic", k) for k in ("model", "defaults")} for m in (SMALL, LARGE)}
    wic_gap = {m: wic[m]["model"] - wic[m]["defaults"] for m in (SMALL, LARGE)}
    assert wic_gap[SMALL] > wic_gap[LARGE] > 0
    assert f"On WiC it narrows too: model tuning leads by {wic_gap[SMALL]:.1f} points on SmolLM2 and " \
        f"{wic_gap[LARGE]:.1f} on Gemma 3 ({wic[SMALL]['model']:.1f} and {wic[LARGE]['model']:.1f} against prompts at " \
        f"{wic[SMALL]['defaults']:.1f} and {wic[LARGE]['defaults']:.1f}, all 638 dev examples)" in sentence
    for m in (SMALL, LARGE):
        record = results[m]["wic"]["model"]
        assert record["dev_examples"] == record["dev_total"] == 638 and record["steps"] == 300
        assert record["learning_rate"] == results[m]["sst2"]["model"]["learning_rate"]
    # MRPC: below the prompt and the majority class on SmolLM2, within a standard error above it on Gemma 3
    mrpc = {m: {k: results[m]["mrpc"][k]["metrics"]["accuracy"] for k in ("model", "defaults", "majority")}
            for m in (SMALL, LARGE)}
    assert mrpc[SMALL]["model"] < mrpc[SMALL]["majority"] < mrpc[SMALL]["defaults"]
    assert mrpc[LARGE]["defaults"] == mrpc[LARGE]["majority"] < mrpc[LARGE]["model"]
    lead = mrpc[LARGE]["model"] - mrpc[LARGE]["defaults"]
    dev = results[LARGE]["mrpc"]["model"]["dev_examples"]
    standard_error = accuracy_standard_error(mrpc[LARGE]["majority"], dev)
    assert dev == results[SMALL]["mrpc"]["model"]["dev_examples"] == 408 and lead < standard_error
    assert f"On MRPC model tuning ends below its prompt on SmolLM2 ({mrpc[SMALL]['model']:.1f} against " \
        f"{mrpc[SMALL]['defaults']:.1f} accuracy, and below the majority class's {mrpc[SMALL]['majority']:.1f}) and " \
        f"{lead:.1f} above it on Gemma 3 ({mrpc[LARGE]['model']:.1f} against {mrpc[LARGE]['defaults']:.1f}, the " \
        f"majority class), within one standard error of the 408-example dev set (about {standard_error:.1f} points)" in sentence
    assert f"on MRPC they end below the majority class on SmolLM2 ({mrpc[SMALL]['model']:.1f} accuracy) and " \
        f"{lead:.1f} above it on Gemma 3 ({mrpc[LARGE]['model']:.1f})" in _targets()
    assert [results[m]["mrpc"]["model"]["learning_rate"] for m in (SMALL, LARGE)] == \
        [results[m]["sst2"]["model"]["learning_rate"] for m in (SMALL, LARGE)]
    # CB: the gap widens with size (the widest gaps in the table), the training examples fitted on both models
    cb = {m: results[m]["cb"]["model"] for m in (SMALL, LARGE)}
    cb_prompt = {m: _primary(results, m, "cb", "defaults") for m in (SMALL, LARGE)}
    cb_gap = {m: cb[m]["primary"] - cb_prompt[m] for m in (SMALL, LARGE)}
    assert cb_gap[LARGE] > cb_gap[SMALL] > 0
    assert sorted(_gaps(results).values())[-2:] == [cb_gap[SMALL], cb_gap[LARGE]]
    for m in (SMALL, LARGE):
        assert cb[m]["primary"] == pytest.approx(sum(cb[m]["metrics"][k] for k in ("accuracy", "macro_f1")) / 2)
        assert cb[m]["dev_examples"] == 56 and cb[m]["train_examples"] == 250 and cb[m]["losses"][-1][1] < 1e-5
        assert cb[m]["steps"] == 300 and cb[m]["learning_rate"] == results[m]["sst2"]["model"]["learning_rate"]
    assert cb_prompt[LARGE] < cb_prompt[SMALL] and abs(cb[LARGE]["primary"] - cb[SMALL]["primary"]) < 1
    assert f"ends at {cb[SMALL]['primary']:.1f} on SmolLM2 and {cb[LARGE]['primary']:.1f} on Gemma 3 (the mean of " \
        f"accuracy and macro-F1 on the 56 dev examples), against prompts at {cb_prompt[SMALL]:.1f} and " \
        f"{cb_prompt[LARGE]:.1f}: leads of {cb_gap[SMALL]:.1f} and {cb_gap[LARGE]:.1f}, the widest in the table" in sentence
    assert f"one dev example moves CB's accuracy by {100 / 56:.1f} points" in sentence
    assert f"(only CB's, +{cb_gap[SMALL]:.1f} on SmolLM2 and +{cb_gap[LARGE]:.1f} on Gemma 3, are wider)" in _targets()
    # "In all": narrows / widens / nothing to read, from every shared task's record
    gaps = _gaps(results)
    narrows = {t for t in both if gaps[(SMALL, t)] > gaps[(LARGE, t)] and gaps[(SMALL, t)] > 0 and
               all(_primary(results, m, t, "model") > _baseline(results, m, t) for m in (SMALL, LARGE))}
    widens = {t for t in both if gaps[(LARGE, t)] > gaps[(SMALL, t)] > 0 and
              all(_primary(results, m, t, "model") > _baseline(results, m, t) for m in (SMALL, LARGE))}
    flat = {t for t in both if all(_primary(results, m, t, "model") - _baseline(results, m, t) <
                                   accuracy_standard_error(_baseline(results, m, t), results[m][t]["model"]["dev_examples"])
                                   for m in (SMALL, LARGE))}
    assert (narrows, widens, flat) == ({"sst2", "rte", "wic"}, {"cb"}, {"copa", "wsc", "mrpc"})
    assert "In all, with size the gap narrows on SST-2, RTE and WiC and widens on CB; on COPA, WSC and MRPC model " \
        "tuning ends no more than a standard error above the better baseline on either model" in sentence
    assert f"model tuning leads prompt tuning by {gap[SMALL]:.1f} points on SmolLM2" in sentence and gap[SMALL] > 0
    assert f"ends {-gap[LARGE]:.1f} below it on Gemma 3" in sentence and gap[LARGE] < 0
    # "within one standard error of the 872-example dev set"
    dev = results[LARGE]["sst2"]["model"]["dev_examples"]
    assert dev == 872 and "872-example dev set" in sentence and \
        -gap[LARGE] < accuracy_standard_error(results[LARGE]["sst2"]["model"]["primary"], dev)
    assert "(300 updates" in sentence
    assert [results[m]["sst2"]["model"]["steps"] for m in (SMALL, LARGE)] == [300, 300]
    # each model's run uses the lr its 60-update check scored highest, and the sentence names both
    for model, name in ((SMALL, "SmolLM2"), (LARGE, "Gemma 3")):
        checks = {c["config"]["learning_rate"]: c for c in
                  (json.loads(p.read_text()) for p in (ROOT / "reports" / "model_lr_check").glob(f"{model}-sst2-*.json"))}
        assert len(checks) >= 3 and all(c["steps"] == 60 and c["dev_examples"] == 200 for c in checks.values())
        best = max(checks, key=lambda lr: checks[lr]["final_metrics"]["accuracy"])
        used = results[model]["sst2"]["model"]["learning_rate"]
        assert used == best and f"{used:g} on {name}".replace("e-0", "e-") in sentence
    assert "60 updates per lr on 200 SST-2 dev examples" in sentence
    # "its check scores lower at every lr above 2e-5 (1e-5 was not tried)"
    large = sorted((json.loads(p.read_text()) for p in (ROOT / "reports" / "model_lr_check").glob(f"{LARGE}-sst2-*.json")),
                   key=lambda c: c["config"]["learning_rate"])
    assert large[0]["config"]["learning_rate"] == 2e-5 and "(1e-5 was not tried)" in sentence
    scores = [c["final_metrics"]["accuracy"] for c in large]
    assert all(s < scores[0] for s in scores[1:])


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
    # RTE on Gemma 3, the whole grid: no cell far above the majority class; the random inits at 100 tokens below it
    large_rte, large_majority = _ablation(LARGE, "rte"), _primary(_results(), LARGE, "rte", "majority")
    assert large_majority is not None and set(large_rte) == {(n, i) for n in lengths for i in inits}
    assert "every length and init" in sentence
    above = max(large_rte.values()) - large_majority
    assert 0 < above < 5 and f"no cell ends more than {above:.1f} points above the majority class " \
        f"({large_majority:.1f})" in sentence
    below = [large_majority - large_rte[(100, i)] for i in ("random-uniform", "sampled-vocab")]
    assert min(below) > 0
    assert f"at 100 tokens the random-uniform and sampled-vocab prompts end {below[0]:.1f} and {below[1]:.1f} " \
        "points below it" in sentence
    model = _results()[SMALL]["rte"]["model"]
    assert (round(model["primary"], 1), model["steps"]) == (69.0, 300)


def _ensemble(model: str, suffix: str = "") -> dict:
    """An SST-2 ensemble record: '' the five 100-update prompts on 200 dev examples, '-full' five
    defaults runs (seeds 0-4) on the whole dev set."""
    return json.loads((ROOT / "reports" / "ensembles" / f"{model}-sst2{suffix}.json").read_text())


def test_ensemble_finding():
    sentence = _finding("Ensembles")
    acc = {m: {k: _ensemble(m)[k]["accuracy"] for k in ("average", "best", "ensemble")} for m in (SMALL, LARGE)}
    assert "on Gemma 3 the majority vote of the five beats both their average and the best single prompt" in sentence
    assert acc[LARGE]["ensemble"] > acc[LARGE]["best"] > acc[LARGE]["average"]
    assert "on SmolLM2 it only equals the average and stays below the best prompt" in sentence
    full = {k: _ensemble(LARGE, "-full")[k]["accuracy"] for k in ("average", "best", "ensemble")}
    assert full["ensemble"] > full["best"] > full["average"]
    assert f"the vote ({full['ensemble']:.1f}) again beats their average ({full['average']:.1f}) and the best of " \
           f"them ({full['best']:.1f})" in sentence
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


def _transfer(name: str, model: str = "smollm2") -> dict:
    record = json.loads((ROOT / "reports" / "transfer" / f"{model}-{name}.json").read_text())
    return {"zero_shot": record["metrics"][record["primary_metric"]],
            "in_domain": record["source_dev_metric"]["metrics"][record["primary_metric"]],
            "step": record["source_dev_metric"]["step"], "method": record.get("method", "prompt tuning"),
            "metrics": record["metrics"], "source_metrics": record["source_dev_metric"]["metrics"],
            "source_examples": record["source_dev_metric"].get("examples"), "target_examples": record["examples"]}


def test_transfer_finding():
    sentence = _finding("Domain transfer")
    pairs = {"qqp-to-mrpc": 300, "mrpc-to-qqp": 300, "squad-to-bioasq": 150}
    assert "QQP <-> MRPC with 300 updates of 8 and SQuAD -> BioASQ with 150 updates of 8" in sentence
    for pair, updates in pairs.items():
        budget = json.loads((ROOT / "reports" / "transfer" / f"smollm2-{pair}-model-tuning.json").read_text())["budget"]
        assert (budget["updates"], budget["batch_size"]) == (updates, 8)
        prompt, model = _transfer(pair), _transfer(f"{pair}-model-tuning")
        assert (prompt["method"], model["method"]) == ("prompt tuning", "model tuning")
        assert prompt["step"] == updates or pair == "qqp-to-mrpc"  # the squad prompt kept its last update
        # both methods' in-domain scores on the same dev examples, and zero-shot on the same target examples
        assert prompt["source_examples"] == model["source_examples"] and prompt["target_examples"] == model["target_examples"]
        assert model["zero_shot"] > prompt["zero_shot"]  # "higher zero-shot ... on every pair's primary metric"
    for record in (ROOT / "reports" / "transfer").glob(f"{LARGE}-*-model-tuning.json"):  # "on both models"
        pair = record.name.removeprefix(f"{LARGE}-").removesuffix("-model-tuning.json")
        assert _transfer(f"{pair}-model-tuning", LARGE)["zero_shot"] > _transfer(pair, LARGE)["zero_shot"]
    assert "on every pair's primary metric (accuracy; F1 on BioASQ), on both models" in sentence
    prompt, model = _transfer("squad-to-bioasq"), _transfer("squad-to-bioasq-model-tuning")
    initial = json.loads((ROOT / "reports" / "transfer" / "smollm2-squad-to-bioasq.json").read_text())
    assert initial["primary_metric"] == "f1"
    lead_in, lead_out = model["in_domain"] - prompt["in_domain"], model["zero_shot"] - prompt["zero_shot"]
    assert (f"On SmolLM2's SQuAD -> BioASQ, model tuning's lead shrinks from {lead_in:.1f} F1 points in-domain "
            f"to {lead_out:.1f} on BioASQ") in sentence and lead_out < lead_in
    for r in (prompt, model):  # "each method keeps about half of its in-domain F1"
        assert 0.45 < r["zero_shot"] / r["in_domain"] < 0.55
    assert _transfer("qqp-to-mrpc")["step"] == 0  # "never beat its untrained initial prompt"
    prompt, model = _transfer("mrpc-to-qqp"), _transfer("mrpc-to-qqp-model-tuning")
    assert f"{model['in_domain'] - prompt['in_domain']:.1f} points of accuracy below model tuning in-domain" in sentence
    assert f"falls to {prompt['zero_shot']:.1f} on QQP against model tuning's {model['zero_shot']:.1f}" in sentence
    assert prompt["metrics"]["f1"] > model["metrics"]["f1"]
    assert f"the higher F1 there ({prompt['metrics']['f1']:.1f} against {model['metrics']['f1']:.1f})" in sentence


@pytest.mark.parametrize("name, section", [("Prompt length and init", "Prompt length and initialisation"),
                                           ("Scale", "Scale"), ("Ensembles", "Prompt ensembles"), ("Domain transfer", "Domain transfer")])
def test_each_finding_cites_a_section_the_report_has(name, section):
    assert f'(section "{section}"' in _finding(name)
    report = (ROOT / "reports" / "results.md").read_text()
    assert f"\n## {section} (" in report


def _margin(results: dict, model: str, task: str) -> float:
    return results[model][task]["defaults"]["primary"] - _baseline(results, model, task)


def _targets() -> str:
    start = README.index("**Where the results table misses its targets**")
    return " ".join(README[start:README.index("\n## Layout", start)].split())


def test_targets_missed_says_what_the_records_show():
    results, text = _results(), _targets()
    # RTE: best margin, and model tuning shows the model can learn it
    rte = max((SMALL, LARGE), key=lambda m: _margin(results, m, "rte"))
    assert rte == SMALL and 0 < _margin(results, SMALL, "rte") < 5
    assert f"the best margin is +{_margin(results, SMALL, 'rte'):.1f} (SmolLM2)" in text
    model = results[SMALL]["rte"]["model"]
    assert f"model tuning reaches {model['primary']:.1f} on SmolLM2 in {model['steps']} updates" in text
    # the lr measurement on held-out train rows: 0.05 (the default) highest of the multiples tried on RTE
    runs = [r for r in json.loads((ROOT / "reports" / "lr_rule.json").read_text())["runs"]
            if r["task"] == "rte" and r["model"] == LARGE]
    assert sorted(r["multiple"] for r in runs) == [0.05, 0.2, 0.8] and {r["steps"] for r in runs} == {150}
    assert max(runs, key=lambda r: r["held_out_accuracy_after"])["multiple"] == 0.05
    from softprompt.training.defaults import LR_PER_EMBEDDING_STD
    assert LR_PER_EMBEDDING_STD == 0.05 and "the default multiple 0.05" in text
    # the length x init grid: no cell 5 points above the majority class
    majority = results[SMALL]["rte"]["majority"]["primary"]
    assert max(_ablation(SMALL, "rte").values()) < majority + 5 and "no cell ends 5 points above" in text
    # the four tasks that stay at a baseline
    margins = [_margin(results, m, t) for m in (SMALL, LARGE) for t in ("mrpc", "wic", "copa", "wsc")]
    assert max(margins) == pytest.approx(1.2, abs=0.05) and "no margin above +1.2 on either model" in text
    # the choices objective: COPA on both models, RTE and MRPC on SmolLM2
    def variant(model: str, task: str = "copa") -> float:
        v = json.loads((ROOT / "reports" / "variants" / model / task / "objective-choices" / "result.json").read_text())
        return (v.get("final_metrics") or {}).get("accuracy", v["best_metric"])

    for task, sentence in (("rte", "SmolLM2 ends at {v:.1f}, below the defaults' {d:.1f}"),
                           ("mrpc", "On SmolLM2's MRPC the choices objective ends at {v:.1f} accuracy, below the "
                                    "defaults' {d:.1f} and the majority class")):
        v, d = variant(SMALL, task), results[SMALL][task]["defaults"]["metrics"]["accuracy"]
        assert v < d and sentence.format(v=v, d=d) in text
    assert variant(SMALL, "mrpc") < results[SMALL]["mrpc"]["majority"]["metrics"]["accuracy"]
    assert all(_primary(results, m, t, "model") <= _primary(results, m, t, "defaults")
               for m in (SMALL, LARGE) for t in ("copa", "wsc"))
    assert "Model tuning, run on COPA and WSC for both models, ends no higher than prompt tuning on either" in text
    wic = {k: _primary(results, SMALL, "wic", k) for k in ("model", "defaults")}
    gaps = _gaps(results)
    baseline_tasks = {(m, t): g for (m, t), g in gaps.items() if t in ("mrpc", "wic", "copa", "wsc")}
    assert sorted(baseline_tasks, key=lambda k: -baseline_tasks[k])[:2] == [(SMALL, "wic"), (LARGE, "wic")]
    assert sorted(gaps, key=lambda k: gaps[k])[-2:] == [(SMALL, "cb"), (LARGE, "cb")]  # "only CB's ... are wider"
    wic_large = {k: _primary(results, LARGE, "wic", k) for k in ("model", "defaults")}
    assert f"model tuning reaches {wic['model']:.1f} on SmolLM2 (all 638 dev examples), " \
           f"{wic['model'] - wic['defaults']:.1f} points above its prompt ({wic['defaults']:.1f}), and " \
           f"{wic_large['model']:.1f} on Gemma 3, {wic_large['model'] - wic_large['defaults']:.1f} above its prompt " \
           f"({wic_large['defaults']:.1f}): the widest gaps between the two methods on these four tasks" in text
    v, d = variant(LARGE, "rte"), results[LARGE]["rte"]["defaults"]["primary"]
    assert v < d and f"and Gemma 3 at {v:.1f}, below its defaults' {d:.1f}" in text
    assert variant(LARGE) - results[LARGE]["copa"]["design"]["primary"] == pytest.approx(2.0)
    assert "Gemma 3 ends 2.0 points above its zero-shot design, SmolLM2 unchanged" in text
    assert "objective: lm -> choices" in (ROOT / "reports" / "results.md").read_text()
    assert variant(SMALL) == results[SMALL]["copa"]["defaults"]["primary"]
    # SST-2: 90 only by the ensemble of five defaults prompts; no single prompt
    best = max(results[m]["sst2"]["defaults"]["primary"] for m in (SMALL, LARGE))
    assert best < 90 and f"the best is {best:.1f} (Gemma 3, the defaults) in the results table" in text
    full = _ensemble(LARGE, "-full")
    seeds = [p["accuracy"] for p in full["per_prompt"]]
    assert full["ensemble"]["accuracy"] >= 90 > max(seeds) and full["examples"] == 872
    assert f"score {full['ensemble']['accuracy']:.1f} on all 872 dev examples" in text
    assert f"the five seeds end between {min(seeds):.1f} and {max(seeds):.1f}" in text
    assert [t["seed"] for t in full["trained"]] == [0, 1, 2, 3, 4] and "with seeds 0 to 4" in text
    defaults = results[LARGE]["sst2"]["defaults"]
    assert all(t["updates"] == defaults["steps"] == 300 and t["length"] == 20 and t["init"] == "class-label"
               for t in full["trained"])
    grouped = json.loads((ROOT / "reports" / "variants" / LARGE / "sst2" / "group-by-length" / "result.json").read_text())
    assert f"length-grouped batches end at {grouped['final_metrics']['accuracy']:.1f}" in text
    longer = json.loads((ROOT / "reports" / "variants" / LARGE / "sst2" / "prompt-length-100" / "result.json").read_text())
    assert longer["settings"]["prompt"]["length"] == 100 and longer["settings"]["train"]["max_steps"] == 300
    assert longer["final_metrics"]["accuracy"] < best
    assert f"the paper's 100-token prompt (the defaults otherwise, 300 updates) at " \
           f"{longer['final_metrics']['accuracy']:.1f}, in {(longer['seconds'] + longer['run']['model_load_seconds']) / 60:.1f} min against the defaults' " \
           f"{results[LARGE]['sst2']['defaults']['wall_seconds'] / 60:.1f}" in text
    # BoolQ: SmolLM2 only, below the majority class
    assert "boolq" not in results[LARGE] and "Gemma 3 was not run" in text
    boolq = results[SMALL]["boolq"]
    assert boolq["defaults"]["train_split"] == "fewglue32-train" and boolq["defaults"]["train_examples"] == 32
    assert boolq["defaults"]["dev_examples"] == boolq["defaults"]["dev_total"] == 3270
    assert f"prompt tuning ends at {boolq['defaults']['primary']:.1f}, below the majority class " \
           f"({boolq['majority']['primary']:.1f}): margin {_margin(results, SMALL, 'boolq'):.1f}" in text
    assert _margin(results, SMALL, "boolq") < 0
    assert f"The zero-shot design scores {boolq['design']['primary']:.1f}" in text
    step, loss = boolq["defaults"]["losses"][-1]
    assert f"(training loss {loss} at update {step})" in text
    assert f"The run took {boolq['defaults']['wall_seconds'] / 60:.0f} min" in text


def test_transfer_finding_gives_gemmas_pairs_and_its_untrained_mrpc_prompt_on_qqp():
    results, sentence = _results(), _finding("Domain transfer")
    records = sorted(p.name for p in (ROOT / "reports" / "transfer").glob(f"{LARGE}-*.json"))
    assert records == sorted([f"{LARGE}-{pair}{kind}.json" for pair in ("qqp-to-mrpc", "squad-to-bioasq")
                              for kind in ("-model-tuning", "")] + [f"{LARGE}-mrpc-to-qqp.json"])
    # MRPC -> QQP: prompt tuning only, the results table's prompt, kept at update 0 (the untrained one)
    mrpc = _transfer("mrpc-to-qqp", LARGE)
    report_run = results[LARGE]["mrpc"]["defaults"]
    assert mrpc["step"] == report_run["best_step"] == 0 and mrpc["source_metrics"] == report_run["metrics"]
    assert "its model tuning was not run): its MRPC prompt is the untrained one (saved at update 0" in sentence
    accuracy, f1 = mrpc["zero_shot"], mrpc["metrics"]["f1"]
    assert abs(f1 - 2 * accuracy / (100 + accuracy) * 100) < 0.5  # all "yes": precision = accuracy, recall 1
    assert f"scores {accuracy:.1f} accuracy on QQP with F1 {f1:.1f}, about what answering \"yes\" to every pair scores" in sentence
    trained = json.loads((ROOT / "reports" / "prompts.json").read_text())["prompts"]
    for pair, updates in (("squad-to-bioasq", 150), ("qqp-to-mrpc", 300)):  # "the same budgets" as SmolLM2's
        large, large_model = _transfer(pair, LARGE), _transfer(f"{pair}-model-tuning", LARGE)
        small = _transfer(pair)
        assert (large["method"], large_model["method"]) == ("prompt tuning", "model tuning")
        assert large["target_examples"] == small["target_examples"] == large_model["target_examples"]
        assert large["source_examples"] == small["source_examples"] == large_model["source_examples"]
        budget = json.loads((ROOT / "reports" / "transfer" / f"{LARGE}-{pair}-model-tuning.json").read_text())["budget"]
        assert (budget["updates"], budget["batch_size"], budget["learning_rate"]) == (updates, 8, 2e-5)
        made_by = [p["made_by"] for p in trained.values() if p["model"] == LARGE and p["task"] == pair.split("-")[0]]
        # the prompt's updates: --steps as stated, or none given where the CPU default (300) is the budget
        assert len(made_by) == 1
        assert f"--steps {updates}" in made_by[0] if updates != CPU_PROFILE.max_steps else "--steps" not in made_by[0]
    # "model tuning at lr 2e-5, as in the scale table": Gemma's model tuning in the results table ran at it
    assert "model tuning at lr 2e-5, as in the scale table" in sentence
    assert {task["model"]["learning_rate"] for task in results[LARGE].values() if "model" in task} == {2e-5}
    large, small = _transfer("squad-to-bioasq", LARGE), _transfer("squad-to-bioasq")
    large_model, small_model = _transfer("squad-to-bioasq-model-tuning", LARGE), _transfer("squad-to-bioasq-model-tuning")
    lead_in, lead_out = large_model["in_domain"] - large["in_domain"], large_model["zero_shot"] - large["zero_shot"]
    assert f"On SQuAD -> BioASQ model tuning's lead shrinks from {lead_in:.1f} F1 points in-domain to {lead_out:.1f}" in sentence
    kept = lambda r: f"{100 * r['zero_shot'] / r['in_domain']:.0f}%"
    assert (f"its prompt keeps {kept(large)} of its in-domain F1 ({large['in_domain']:.1f} -> {large['zero_shot']:.1f}) "
            f"and its model tuning {kept(large_model)} ({large_model['in_domain']:.1f} -> {large_model['zero_shot']:.1f}), "
            f"where SmolLM2's prompt keeps {kept(small)} and SmolLM2's model tuning {kept(small_model)}") in sentence
    prompt, model = _transfer("qqp-to-mrpc", LARGE), _transfer("qqp-to-mrpc-model-tuning", LARGE)
    # "almost never answers yes": F1 on the positive (duplicate / paraphrase) class near 0 on both tasks
    assert prompt["source_metrics"]["f1"] < 5 and prompt["metrics"]["f1"] < 5
    assert (f"({prompt['in_domain']:.1f} accuracy on QQP, F1 {prompt['source_metrics']['f1']:.1f}; kept at update "
            f"{prompt['step']} of 300) and so scores {prompt['zero_shot']:.1f} on MRPC (F1 {prompt['metrics']['f1']:.1f})") in sentence
    mrpc_majority = _primary(results, LARGE, "mrpc", "majority")
    assert model["zero_shot"] < mrpc_majority
    assert (f"its model tuning falls from {model['in_domain']:.1f} in-domain to {model['zero_shot']:.1f} on MRPC, "
            f"below MRPC's majority class ({mrpc_majority:.1f})") in sentence


def test_length_bands_paragraph_states_the_own_task_pair():
    def run(name: str) -> tuple[dict, dict[int, float]]:
        folder = ROOT / "reports" / "own_task" / name
        result = json.loads((folder / "result.json").read_text())
        losses = {r["step"]: r["loss"] for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())
                  if r["event"] == "train"}
        return result, losses

    (banded, banded_loss), (padded, padded_loss) = run("nli"), run("nli-one-padded-pass")
    assert banded["settings"]["train"]["length_bands"] is True
    assert padded["settings"]["train"].get("length_bands", False) is False
    assert banded["settings"]["train"]["seed"] == padded["settings"]["train"]["seed"]
    start = README.index("**Length bands (`--length-bands`")
    text = " ".join(README[start:README.index("**Objective.**", start)].split())
    assert (f"trained and evaluated in {banded['seconds'] / 60:.1f} min against {padded['seconds'] / 60:.1f} min "
            "for one padded pass") in text
    assert round(banded_loss[10], 5) == round(padded_loss[10], 5) and "agree to 6 digits at update 10" in text
    assert abs(banded_loss[300] - padded_loss[300]) > 1e-3
    new, old = banded["best_metrics"], padded["best_metrics"]
    assert f"dev accuracy ended at {new['accuracy']:.1f} against {old['accuracy']:.1f} (one of 56 examples)" in text
    assert abs(new["accuracy"] - old["accuracy"]) == pytest.approx(100 / 56)
    assert f"macro-F1 at {new['macro_f1']:.1f} against {old['macro_f1']:.1f}" in text


def _recipes() -> dict[tuple[str, str, int], dict]:
    runs = json.loads((ROOT / "reports" / "recipe.json").read_text())["runs"]
    return {(r["model"], r["recipe"], r["steps"]): r for r in runs if r["task"] == "rte" and r["held_out"] == 300}


def test_rte_recipe_sentence_says_what_the_held_out_record_shows():
    runs, text = _recipes(), _targets()
    after = {key: r["held_out_after"] for key, r in runs.items()}
    small = {recipe: after[(SMALL, recipe, 300)] for recipe in ("defaults", "adam", "linear-decay", "residual")}
    large = {recipe: after[(LARGE, recipe, 300)] for recipe in ("defaults", "residual")}
    majority = {r["held_out_majority"] for r in runs.values()}
    assert len(majority) == 1  # the same 300 rows for every run
    # one standard error of an accuracy near the defaults' on 300 rows
    se = accuracy_standard_error(small["defaults"], 300)
    assert all(v - small["defaults"] < se for v in small.values()) and large["residual"] < large["defaults"]
    assert f"on SmolLM2 Adam ends at {small['adam']:.1f}, a linear lr decay at {small['linear-decay']:.1f} and the " \
           f"residual reparameterization (`--reparam residual`) at {small['residual']:.1f} against the defaults' " \
           f"{small['defaults']:.1f} (majority class {majority.pop():.1f}; one standard error on 300 rows is about " \
           f"{se:.1f} points); on Gemma 3 the residual network ends at {large['residual']:.1f} against the " \
           f"defaults' {large['defaults']:.1f}" in text


def test_rte_longer_run_sentence_says_what_the_held_out_record_shows():
    runs, text = _recipes(), _targets()
    short, long = runs[(SMALL, "defaults", 300)], runs[(SMALL, "defaults", 1200)]
    assert long["changes"] == {} and long["settings"]["train"]["max_steps"] == 1200
    assert long["held_out_majority"] == short["held_out_majority"]  # the same rows
    after, gain = long["held_out_after"], long["held_out_after"] - short["held_out_after"]
    over_majority = after - long["held_out_majority"]
    # four times the updates end well beyond one standard error of the 300-update run
    assert gain > 3 * accuracy_standard_error(short["held_out_after"], 300)
    losses = dict(long["losses"])
    blocks = [sum(losses[s] for s in range(a + 10, a + 101, 10)) / 10 for a in range(0, 1200, 100)]
    first_below = next(i for i, b in enumerate(blocks) if b < math.log(2))
    assert (f"the same defaults for 1200 updates (`--steps 1200`, {long['seconds'] / 60:.1f} min) end at {after:.1f} on "
            f"the same held-out rows, {gain:.1f} above 300 updates and {over_majority:.1f} above the majority class; "
            "their training loss (mean of each 100 updates) first falls below the label prior's 0.693 in updates "
            f"{first_below * 100 + 1} to {first_below * 100 + 100} and ends at {blocks[-1]:.3f}") in text


def _steps_1200_on_dev(task: str, dev_examples: int) -> tuple[dict, float, float]:
    """A SmolLM2 1200-update variant record: the record, its accuracy on the whole dev set, and its margin
    over the better baseline of the results table (same dev set)."""
    record = json.loads((ROOT / "reports" / "variants" / SMALL / task / "steps-1200" / "result.json").read_text())
    results = _results()
    dev = record["dev_score"]
    assert dev["examples"] == results[SMALL][task]["defaults"]["dev_examples"] == dev_examples
    assert record["best_step"] == record["steps"] == 1200
    accuracy = dev["metrics"]["accuracy"]
    return record, accuracy, accuracy - _baseline(results, SMALL, task)


def test_rte_longer_run_on_dev_says_what_its_variant_record_shows():
    record, accuracy, margin = _steps_1200_on_dev("rte", 277)
    assert margin >= 5
    assert (f"`softprompt train --task rte --steps 1200` scores {accuracy:.1f} on all 277 dev "
            f"examples, {margin:.1f} above the better baseline, its best prompt the last one "
            f"({record['seconds'] / 60:.1f} min of training") in _targets()


def test_mrpc_longer_run_on_dev_says_what_its_variant_record_shows():
    record, accuracy, margin = _steps_1200_on_dev("mrpc", 408)
    assert 0 < margin < 5
    [prior] = [w for w in record["warnings"] if "entropy of the training labels" in w]
    second_half, entropy = (float(x) for x in re.findall(r"\((\d\.\d{3})\)", prior)[:2])
    assert second_half >= 0.95 * entropy  # the loss watch's tolerance: the run ended at the label prior
    assert (f"`softprompt train --task mrpc --steps 1200` scores {accuracy:.1f} accuracy on all 408 "
            f"dev examples, {margin:.1f} above the better baseline, its best prompt the last one "
            f"({record['seconds'] / 60:.1f} min of training), and its training loss over the second half "
            f"({second_half:.3f}) still sits at the label prior ({entropy:.3f})") in _targets()

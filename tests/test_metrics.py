"""Metrics against hand-worked examples, scikit-learn, and the official SQuAD script's outputs (percent)."""
import json
import math
import random
from pathlib import Path

import pytest

from softprompt.tasks.metrics import (
    accuracy,
    accuracy_standard_error,
    binary_f1,
    exact_match,
    gender_parity,
    macro_f1,
    matthews_corr,
    multirc_metrics,
    normalize_answer,
    record_metrics,
    squad_metrics,
    superglue_score,
    superglue_task_score,
    token_f1,
)

# tp = 2 (items 0, 4), fp = 1 (item 1), fn = 1 (item 2), tn = 1 (item 3)
PRED = ["1", "1", "0", "0", "1"]
GOLD = ["1", "0", "1", "0", "1"]


def test_accuracy():
    assert accuracy(["a", "b", "a"], ["a", "a", "a"]) == pytest.approx(200 / 3)
    assert accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        accuracy(["a"], [])


def test_accuracy_standard_error_is_the_spread_of_accuracy_over_resampled_rows():
    # a coin at 50% on 100 rows: sqrt(0.25 / 100) = 5 points; MRPC's majority class on its 408 dev rows
    assert accuracy_standard_error(50.0, 100) == pytest.approx(5.0)
    assert accuracy_standard_error(68.4, 408) == pytest.approx(2.30, abs=0.005)
    assert accuracy_standard_error(100.0, 10) == 0.0
    # the spread of accuracies of a 70% predictor scored on 200 rows, drawn 2000 times
    rng = random.Random(0)
    scores = [accuracy(["y" if rng.random() < 0.7 else "n" for _ in range(200)], ["y"] * 200) for _ in range(2000)]
    mean = sum(scores) / len(scores)
    spread = math.sqrt(sum((x - mean) ** 2 for x in scores) / (len(scores) - 1))
    assert spread == pytest.approx(accuracy_standard_error(70.0, 200), rel=0.05)
    with pytest.raises(ValueError, match="at least one example"):
        accuracy_standard_error(50.0, 0)
    with pytest.raises(ValueError, match="in points"):
        accuracy_standard_error(170.0, 200)
def test_binary_f1():
    # 2TP / (2TP + FP + FN) = 4 / 6
    assert binary_f1(PRED, GOLD, "1") == pytest.approx(100 * 4 / 6)
    # a prediction that is no label counts as negative: gold positive -> a false negative
    assert binary_f1(["1", "junk"], ["1", "1"], "1") == pytest.approx(100 * 2 / 3)
    assert binary_f1(["0", "0"], ["0", "0"], "1") == 0.0  # undefined -> 0


def test_macro_f1():
    pred = ["entailment", "contradiction", "contradiction", "entailment"]
    gold = ["entailment", "entailment", "contradiction", "neutral"]
    # entailment: tp1 fp1 fn1 -> 1/2; contradiction: tp1 fp1 fn0 -> 2/3; neutral: tp0 fn1 -> 0
    expected = 100 * (0.5 + 2 / 3 + 0) / 3
    assert macro_f1(pred, gold, ["entailment", "contradiction", "neutral"]) == pytest.approx(expected)
    assert macro_f1(pred, gold) == pytest.approx(expected)  # classes from the references


def test_matthews_corr():
    # (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (2 - 1) / sqrt(3*3*2*2) = 1/6
    assert matthews_corr(PRED, GOLD, "1") == pytest.approx(100 / 6)
    assert matthews_corr(GOLD, GOLD, "1") == pytest.approx(100.0)
    assert matthews_corr([("0" if g == "1" else "1") for g in GOLD], GOLD, "1") == pytest.approx(-100.0)
    assert matthews_corr(["1"] * 5, GOLD, "1") == 0.0  # constant predictor


def test_multirc_f1a_and_em():
    groups = ["q1", "q1", "q1", "q2", "q2"]
    gold = ["True", "False", "True", "False", "True"]
    pred = ["True", "False", "False", "False", "True"]
    scores = multirc_metrics(pred, gold, groups)
    # F1a over all options: tp 2, fp 0, fn 1 -> 4/5; EM: q2 all right, q1 not -> 1/2
    assert scores["f1a"] == pytest.approx(80.0)
    assert scores["em"] == pytest.approx(50.0)


def test_gender_parity():
    assert gender_parity(["x", "x", "x", "y"], ["a", "a", "b", "b"]) == pytest.approx(50.0)


def test_normalize_answer_is_squads():
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("Theory of the 'A' team") == "theory of team"
    assert exact_match("the Denver Broncos.", "Denver Broncos")


def test_token_f1():
    assert token_f1("Denver", "Denver Broncos") == pytest.approx(2 / 3)  # p 1, r 1/2
    assert token_f1("the", "a") == 0.0  # both normalise to nothing: no common token
    assert token_f1("broncos broncos", "broncos") == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_squad_metrics_max_over_answers():
    preds = ["the Denver Broncos", "Denver"]
    golds = [["Denver Broncos", "Broncos"], ["Denver Broncos", "Carolina Panthers"]]
    scores = squad_metrics(preds, golds)
    assert scores["em"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert record_metrics(preds, golds) == scores
    with pytest.raises(TypeError):
        squad_metrics(["x"], ["x"])  # a bare string is not a list of answers


def test_superglue_score_human_baseline():
    # SuperGLUE's published human baseline: 89.8 overall
    human = {
        "boolq": {"accuracy": 89.0},
        "cb": {"accuracy": 98.9, "macro_f1": 95.8},
        "copa": {"accuracy": 100.0},
        "multirc": {"f1a": 81.8, "em": 51.9},
        "record": {"f1": 91.7, "em": 91.3},
        "rte": {"accuracy": 93.6},
        "wic": {"accuracy": 80.0},
        "wsc": {"accuracy": 100.0},
        "axb": {"matthews_corr": 76.6},  # diagnostics are not part of the score
    }
    assert superglue_score(human, require_all=True) == pytest.approx(89.7875)
    assert round(superglue_score(human), 1) == 89.8
    assert superglue_task_score("cb", human["cb"]) == pytest.approx((98.9 + 95.8) / 2)
    assert superglue_score({"rte": {"accuracy": 60.0}, "cb": {"accuracy": 80.0, "macro_f1": 60.0}}) == pytest.approx(65.0)
    with pytest.raises(ValueError, match="missing"):
        superglue_score({"rte": {"accuracy": 60.0}}, require_all=True)
    with pytest.raises(ValueError, match="macro_f1"):
        superglue_score({"cb": {"accuracy": 60.0}})
    assert not math.isnan(superglue_score({"boolq": {"accuracy": 0.0}}))


# ------------------------------------------------ against the reference implementations
def _label_sequences(classes, n_cases=40, seed=0):
    """Random (prediction, reference) sequences, including degenerate ones (one class only)."""
    rng = random.Random(seed)
    cases = [(["1"] * 6, ["1"] * 6), (["0"] * 5, ["1"] * 5), (["1", "0", "0"], ["0", "0", "0"])]
    for _ in range(n_cases):
        n = rng.randint(1, 30)
        cases.append(([rng.choice(classes) for _ in range(n)], [rng.choice(classes) for _ in range(n)]))
    return cases


def test_binary_f1_and_mcc_match_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    for pred, gold in _label_sequences(["0", "1"]):
        expected_f1 = 100 * sk.f1_score(gold, pred, pos_label="1", labels=["0", "1"], zero_division=0)
        assert binary_f1(pred, gold, "1") == pytest.approx(expected_f1), (pred, gold)
        assert matthews_corr(pred, gold, "1") == pytest.approx(100 * sk.matthews_corrcoef(gold, pred), abs=1e-9), (pred, gold)


def test_macro_f1_matches_scikit_learn_over_the_given_classes():
    sk = pytest.importorskip("sklearn.metrics")
    labels = ["entailment", "contradiction", "neutral"]
    for pred, gold in _label_sequences(labels, seed=1):
        expected = 100 * sk.f1_score(gold, pred, labels=labels, average="macro", zero_division=0)
        assert macro_f1(pred, gold, labels) == pytest.approx(expected), (pred, gold)


OFFICIAL_SQUAD = json.loads((Path(__file__).parent / "data" / "squad_official_cases.json").read_text())


@pytest.mark.parametrize("case", OFFICIAL_SQUAD["cases"], ids=lambda c: repr(c["prediction"]))
def test_squad_em_f1_match_the_official_script(case):
    ours = squad_metrics([case["prediction"]], [case["answers"]])
    assert ours["em"] == pytest.approx(case["official"]["exact_match"])
    assert ours["f1"] == pytest.approx(case["official"]["f1"])


def test_squad_metrics_over_all_cases_match_the_official_script():
    cases = OFFICIAL_SQUAD["cases"]
    ours = squad_metrics([c["prediction"] for c in cases], [c["answers"] for c in cases])
    assert ours == pytest.approx({"em": OFFICIAL_SQUAD["all"]["exact_match"], "f1": OFFICIAL_SQUAD["all"]["f1"]})

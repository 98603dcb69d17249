"""Score a few hard SQuAD cases with the official v1.1 evaluation script and record its outputs.

The official script (rajpurkar's `evaluate-v1.1.py`, distributed with SQuAD) is not part of this
repository; give its path. Each case is scored alone (its EM and F1), and all cases together,
and the outputs go to tests/data/squad_official_cases.json, which tests/test_metrics.py checks
softprompt's `squad_metrics` against.

    python scripts/squad_reference_cases.py --official /path/to/evaluate-v1.1.py
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "squad_official_cases.json"

# (prediction, gold answers): articles, punctuation, case, repeated tokens, several golds,
# partial overlap, nothing in common, an empty prediction, a prediction that is only an article.
CASES: list[tuple[str, list[str]]] = [
    ("The Eiffel Tower", ["Eiffel Tower"]),
    ("eiffel tower, in Paris.", ["the Eiffel Tower", "Paris"]),
    ("Denver Broncos", ["Denver Broncos", "The Denver Broncos", "Broncos"]),
    ("the the cat sat", ["a cat sat on the mat"]),
    ("1,000,000 people", ["1000000"]),
    ("in 1776", ["July 4, 1776", "1776"]),
    ("New York City", ["Los Angeles"]),
    ("", ["something"]),
    ("an", ["an apple"]),
    ("Saint-Denis (France)", ["Saint Denis, France"]),
    ("the  Ünïcode café", ["unicode café", "Ünïcode Café"]),
    ("red red red blue", ["red blue blue"]),
]


def _official(script: Path, cases: list[tuple[str, list[str]]]) -> dict[str, float]:
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "", "qas": [
        {"id": str(i), "question": "", "answers": [{"text": g, "answer_start": 0} for g in golds]}
        for i, (_, golds) in enumerate(cases)]}]}]}
    predictions = {str(i): pred for i, (pred, _) in enumerate(cases)}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data.json").write_text(json.dumps(data))
        (Path(tmp) / "pred.json").write_text(json.dumps(predictions))
        out = subprocess.run([sys.executable, str(script), str(Path(tmp) / "data.json"), str(Path(tmp) / "pred.json")],
                             check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="path to the official evaluate-v1.1.py")
    args = parser.parse_args()
    record = {
        "source": "official SQuAD v1.1 evaluate-v1.1.py, run by scripts/squad_reference_cases.py",
        "cases": [{"prediction": p, "answers": g, "official": _official(args.official, [(p, g)])} for p, g in CASES],
        "all": _official(args.official, CASES),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}: {len(CASES)} cases, all together {record['all']}")


if __name__ == "__main__":
    main()

"""User tasks defined by a small spec file (YAML or JSON).

Example spec (paths are relative to the spec file's folder):

    name: reviews                 # optional; default: the spec file's name
    kind: classification          # or generation; default: classification when labels are given
    data:                         # one file per split (jsonl, csv or tsv with a header row)
      train: train.jsonl
      dev: dev.csv
      test: test.tsv              # rows may lack the target field (target "")
    input: "review: {text} stars: {stars}"   # {field} placeholders; {{ and }} for braces
    target: label                 # the field holding the gold output
    label_words: [negative, positive]        # classification: the options, in order
    label_map: {"0": negative, "1": positive}  # optional: raw target value -> label word
    metric: accuracy              # classification: accuracy | f1 | macro_f1 | matthews
                                  # generation: squad (EM/F1, default) | exact_match
    positive_label: positive      # for f1 / matthews (default: the last label word)

With a label_map and no label_words, the label words are the map's values in order. In a
generation task the target field may hold a list of strings: every one is a gold answer,
the first is the training target.

`load_custom_task(path)` builds the task; `get_task("path/to/spec.yaml")` does the same.
Every problem names the spec file and key, or the data file, line and field.
"""
from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any, Sequence

from softprompt.tasks.base import DataError, Example, Split, Task
from softprompt.tasks.metrics import accuracy, binary_f1, macro_f1, matthews_corr, squad_metrics
from softprompt.tasks.readers import read_csv, read_jsonl

__all__ = ["CustomTask", "SPEC_SUFFIXES", "is_spec_path", "load_custom_task", "parse_spec"]

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
SPEC_KEYS = ("name", "description", "kind", "data", "input", "target", "label_words", "label_map", "metric",
             "positive_label")
REQUIRED_KEYS = ("data", "input", "target")
CLASSIFICATION_METRICS = ("accuracy", "f1", "macro_f1", "matthews")
GENERATION_METRICS = ("squad", "exact_match")
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".tsv")


def is_spec_path(name: str | Path) -> bool:
    return str(name).lower().endswith(SPEC_SUFFIXES)


def _read_spec_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: task spec file not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    else:
        import yaml

        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise DataError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(spec, dict):
        raise DataError(f"{path}: a task spec should be a mapping of keys ({', '.join(SPEC_KEYS)})")
    return spec


def _template_fields(template: str, spec_path: Path) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise DataError(f"{spec_path}: key 'input': bad template ({err}); write {{{{ and }}}} for literal braces") from None
    names = []
    for _, name, format_spec, conversion in parsed:
        if name is None:
            continue
        if not name.strip() or name.isdigit() or any(c in name for c in ".[]"):
            raise DataError(f"{spec_path}: key 'input': placeholder {{{name}}} should name a field, e.g. {{text}}")
        if format_spec or conversion:
            raise DataError(f"{spec_path}: key 'input': placeholder {{{name}}} should be a plain {{field}}")
        names.append(name)
    if not names:
        raise DataError(f"{spec_path}: key 'input': the template has no {{field}} placeholder")
    return list(dict.fromkeys(names))


def parse_spec(spec: dict[str, Any], spec_path: Path) -> dict[str, Any]:
    """Validate a spec mapping; returns it normalised (paths resolved, defaults filled)."""
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        raise DataError(f"{spec_path}: unknown key {unknown[0]!r}; known keys: {', '.join(SPEC_KEYS)}")
    for key in REQUIRED_KEYS:
        if key not in spec or spec[key] in (None, "", {}):
            raise DataError(f"{spec_path}: missing key {key!r}")

    def text(key: str) -> str:
        value = spec[key]
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{spec_path}: key {key!r} should be a non-empty string, got {value!r:.60}")
        return value

    out: dict[str, Any] = {"spec_path": spec_path}
    out["name"] = text("name") if "name" in spec else spec_path.name.rsplit(".", 1)[0]
    out["description"] = str(spec.get("description") or "")
    out["input"] = text("input")
    out["fields"] = _template_fields(out["input"], spec_path)
    out["target"] = text("target")

    data = spec["data"]
    if not isinstance(data, dict):
        raise DataError(f"{spec_path}: key 'data' should map split names to files, e.g. {{train: train.jsonl}}")
    files: dict[str, Path] = {}
    for split, file in data.items():
        if not isinstance(split, str) or not split:
            raise DataError(f"{spec_path}: key 'data': split names should be strings, got {split!r}")
        if not isinstance(file, str) or not file.strip():
            raise DataError(f"{spec_path}: key 'data.{split}' should be a file path, got {file!r:.60}")
        path = Path(file).expanduser()
        if not path.is_absolute():
            path = spec_path.parent / path
        if not str(path).lower().endswith(DATA_SUFFIXES):
            raise DataError(f"{spec_path}: key 'data.{split}': {file!r} should end in {', '.join(DATA_SUFFIXES)}")
        files[split] = path
    out["files"] = files

    label_words = spec.get("label_words")
    label_map = spec.get("label_map")
    if label_words is not None:
        if (not isinstance(label_words, list) or len(label_words) < 2
                or not all(isinstance(w, str) and w.strip() for w in label_words)):
            raise DataError(f"{spec_path}: key 'label_words' should be a list of at least two non-empty strings")
        if len(set(label_words)) != len(label_words):
            raise DataError(f"{spec_path}: key 'label_words' has a repeated word")
    if label_map is not None:
        if not isinstance(label_map, dict) or not label_map:
            raise DataError(f"{spec_path}: key 'label_map' should map raw label values to label words")
        bad = [v for v in label_map.values() if not isinstance(v, str) or not v.strip()]
        if bad:
            raise DataError(f"{spec_path}: key 'label_map': values should be label words (strings), got {bad[0]!r}")
        label_map = {_raw_key(k): v for k, v in label_map.items()}
        if label_words is None:
            label_words = list(dict.fromkeys(label_map.values()))
        else:
            stray = [v for v in label_map.values() if v not in label_words]
            if stray:
                raise DataError(f"{spec_path}: key 'label_map': {stray[0]!r} is not one of label_words")
    kind = spec.get("kind")
    if kind is None:
        kind = "classification" if label_words is not None else "generation"
    if kind not in ("classification", "generation"):
        raise DataError(f"{spec_path}: key 'kind' should be 'classification' or 'generation', got {kind!r:.40}")
    if kind == "classification" and label_words is None:
        raise DataError(f"{spec_path}: missing key 'label_words' (a classification task needs its label words)")
    if kind == "classification" and len(label_words or ()) < 2:
        raise DataError(f"{spec_path}: key 'label_words' should list at least two words")
    if kind == "generation" and (label_words is not None or label_map is not None):
        raise DataError(f"{spec_path}: key 'label_words'/'label_map' only apply to kind: classification")
    out["kind"] = kind
    out["label_words"] = tuple(label_words) if label_words is not None else None
    out["label_map"] = label_map

    metrics = CLASSIFICATION_METRICS if kind == "classification" else GENERATION_METRICS
    metric = spec.get("metric", metrics[0])
    if metric not in metrics:
        raise DataError(f"{spec_path}: key 'metric' should be one of {', '.join(metrics)} for a {kind} task, got {metric!r:.40}")
    out["metric"] = metric
    positive = spec.get("positive_label")
    if positive is not None:
        if kind != "classification" or positive not in (label_words or ()):
            raise DataError(f"{spec_path}: key 'positive_label' should be one of label_words, got {positive!r:.40}")
    elif kind == "classification" and label_words:
        positive = label_words[-1]
    out["positive_label"] = positive
    return out


def _raw_key(value: Any) -> str:
    """Raw label values compare as text: 1, '1' and 1.0 from a csv/jsonl are all '1'.
    (JSON true/false compare as 'true'/'false'.)"""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class CustomTask(Task):
    """A task built from a spec file (see the module docstring)."""

    def __init__(self, spec: dict[str, Any], strict: bool = False):
        super().__init__(None, strict)
        self.spec = spec
        self.spec_path: Path = spec["spec_path"]
        self.name = spec["name"]
        self.kind = spec["kind"]
        self.label_words = spec["label_words"]
        self.primary_metric = {"squad": "f1", "matthews": "matthews_corr"}.get(spec["metric"], spec["metric"])

    def split_path(self, split: Split) -> Path:
        files = self.spec["files"]
        if split not in files:
            raise DataError(
                f"{self.spec_path}: task {self.name!r} has no split {split!r} (key 'data' lists: {', '.join(files)})"
            )
        path = files[split]
        if not path.is_file():
            raise DataError(f"{path}: file not found (split {split!r} of {self.spec_path})")
        return path

    def available_splits(self) -> list[str]:
        return [s for s, p in self.spec["files"].items() if p.is_file()]

    def _rows(self, path: Path):
        lower = str(path).lower()
        if lower.endswith((".jsonl", ".jsonl.gz")):
            return read_jsonl(path)
        return read_csv(path, delimiter="\t" if lower.endswith(".tsv") else ",")

    def _value(self, row: dict[str, Any], name: str, path: Path, line_no: int, why: str) -> Any:
        if name not in row:
            raise DataError(f"{path}:{line_no}: missing field {name!r} ({why})")
        value = row[name]
        if value is None:
            raise DataError(f"{path}:{line_no}: field {name!r} is null ({why})")
        if isinstance(value, (dict, list)) and why == "used by the input template":
            raise DataError(f"{path}:{line_no}: field {name!r} should be text or a number, got {type(value).__name__}")
        return value

    def _target(self, row: dict[str, Any], path: Path, line_no: int, split: str) -> tuple[str, tuple[str, ...]]:
        name = self.spec["target"]
        if split == "test" and (name not in row or row[name] in (None, "")):
            return "", ()
        value = self._value(row, name, path, line_no, "the target field")
        if self.kind == "generation":
            golds = value if isinstance(value, list) else [value]
            answers = []
            for gold in golds:
                if isinstance(gold, (dict, list)) or gold is None:
                    raise DataError(f"{path}:{line_no}: field {name!r} should be text or a list of texts")
                answers.append(str(gold).strip())
            answers = [a for a in dict.fromkeys(answers) if a]
            if not answers:
                raise DataError(f"{path}:{line_no}: field {name!r} is empty")
            return answers[0], tuple(answers)
        if isinstance(value, (dict, list)):
            raise DataError(f"{path}:{line_no}: field {name!r} should be a label, got {type(value).__name__}")
        label_map = self.spec["label_map"]
        raw = _raw_key(value)
        if label_map is not None:
            if raw not in label_map:
                raise DataError(
                    f"{path}:{line_no}: field {name!r} has value {raw!r}, not a key of label_map "
                    f"({', '.join(map(repr, label_map))})"
                )
            return label_map[raw], ()
        word = str(value).strip()
        label_words = self.label_words or ()
        if word not in label_words:
            raise DataError(
                f"{path}:{line_no}: field {name!r} has value {word!r}, not one of the label words "
                f"({', '.join(label_words)}); add a label_map to the spec to translate raw values"
            )
        return word, ()

    def load(self, split: Split) -> list[Example]:
        path = self.split_path(split)
        template = self.spec["input"]
        examples = []
        for line_no, row in self._rows(path):
            values = {}
            for name in self.spec["fields"]:
                value = self._value(row, name, path, line_no, "used by the input template")
                values[name] = _raw_key(value) if isinstance(value, (bool, float)) else str(value).strip()
            text = template.format(**values).strip()
            if not text:
                raise DataError(f"{path}:{line_no}: the input template gives an empty input")
            target, answers = self._target(row, path, line_no, split)
            examples.append(Example(
                input=text, target=target, options=self.label_words, answers=answers, meta={"line": line_no},
            ))
        if not examples:
            raise DataError(f"{path}: no rows")
        return examples

    def compute_metrics(self, predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        refs = [ex.target for ex in examples]
        metric = self.spec["metric"]
        if self.kind == "generation":
            scores = squad_metrics(predictions, [ex.answers or (ex.target,) for ex in examples])
            if metric == "exact_match":
                return {"exact_match": accuracy([p.strip() for p in predictions], refs), **scores}
            return scores
        scores = {"accuracy": accuracy(predictions, refs)}
        positive = self.spec["positive_label"]
        if metric == "f1":
            scores["f1"] = binary_f1(predictions, refs, positive)
        elif metric == "macro_f1":
            scores["macro_f1"] = macro_f1(predictions, refs, self.label_words)
        elif metric == "matthews":
            scores["matthews_corr"] = matthews_corr(predictions, refs, positive)
        return scores

    def __repr__(self) -> str:
        return f"CustomTask(name={self.name!r}, spec={str(self.spec_path)!r})"


def load_custom_task(path: str | Path, strict: bool = False) -> CustomTask:
    """Build a task from a YAML/JSON spec file; errors name the spec file and key."""
    spec_path = Path(path).expanduser()
    if not is_spec_path(spec_path):
        raise DataError(f"{spec_path}: a task spec file should end in {', '.join(SPEC_SUFFIXES)}")
    return CustomTask(parse_spec(_read_spec_file(spec_path), spec_path), strict=strict)

"""Extractive QA from MRQA 2019 files, as generation: the model writes the answer.

Formats (the same for every MRQA task, so a SQuAD prompt is evaluated out of domain unchanged):

    natural: '<context>\nQuestion: <question>\nAnswer:'  (the default: decoder-only models)
    t5:      'context: <context> question: <question>'
    target: the answer (the first detected answer span, else the first listed answer)
    answers: every distinct gold answer (the metric takes the max over them)

The t5 format is T5's SQuAD format ('question: ... context: ...') with the two fields swapped: the
model truncates an over-long input to its last `max_input_tokens` tokens, so the question
goes last, where truncation keeps it (cutting the start of a long context instead).
Metric: SQuAD EM and F1 with the official answer normalisation; primary F1.

MRQA files: gzip (or plain) JSON lines; the first line is a header ({"header": {...}}), then
one context per line: {"context": str, "qas": [{"qid", "question", "answers",
"detected_answers"}, ...]}.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

from softprompt.tasks.base import DataError, Example, Split, Task, TaskFormat
from softprompt.tasks.metrics import squad_metrics
from softprompt.tasks.readers import field, read_jsonl, require_file, text_field
from softprompt.tasks.registry import register_task

__all__ = ["BioASQ", "MRQA", "SQuAD", "read_mrqa"]


def read_mrqa(path: Path) -> list[tuple[int, str, dict[str, Any], int]]:
    """(line, context, qa, index of qa in its line) for every question of an MRQA file,
    with every field the task uses checked; errors name file:line and field."""
    out = []
    for line_no, obj in read_jsonl(path):
        if "header" in obj:
            continue
        context = text_field(obj, "context", path, line_no)
        qas = field(obj, "qas", path, line_no, list)
        for i, qa in enumerate(qas):
            where = f"qas[{i}]"
            text_field(qa, "question", path, line_no, where)
            field(qa, "qid", path, line_no, str, where)
            answers = field(qa, "answers", path, line_no, list, where)
            if not answers:
                raise DataError(f"{path}:{line_no}: field '{where}.answers' is empty")
            for j, answer in enumerate(answers):
                if not isinstance(answer, str):
                    raise DataError(
                        f"{path}:{line_no}: field '{where}.answers[{j}]' should be str, got {type(answer).__name__}"
                    )
            for j, detected in enumerate(qa.get("detected_answers") or []):
                text_field(detected, "text", path, line_no, f"{where}.detected_answers[{j}]")
            out.append((line_no, context, qa, i))
    if not out:
        raise DataError(f"{path}: no questions")
    return out


@register_task("mrqa")
class MRQA(Task):
    """Any MRQA-format file, evaluation only: split 'dev' reads `file`.

    get_task("path/to/TextbookQA.jsonl.gz") builds one (the task is named after the file);
    so does get_task("mrqa", file="path/to/X.jsonl.gz") or MRQA(file=...).
    """

    name = "mrqa"
    kind = "generation"
    label_words = None
    primary_metric = "f1"
    formats = {
        "natural": TaskFormat("{context}\nQuestion: {question}\nAnswer:"),
        "t5": TaskFormat("context: {context} question: {question}"),
    }

    def __init__(
        self,
        data_dir: str | Path | None = None,
        strict: bool = False,
        file: str | Path | None = None,
        name: str | None = None,
    ):
        super().__init__(data_dir, strict)
        self.file = Path(file) if file is not None else None
        if name is not None:
            self.name = name
        elif self.file is not None:
            self.name = self.file.name.split(".")[0].lower()

    def split_path(self, split: Split) -> Path:
        if split != "dev":
            raise DataError(f"{self.name} has no split {split!r}: an MRQA file is one evaluation ('dev') split")
        if self.file is None:
            raise DataError(
                "the generic 'mrqa' task needs a file: get_task('path/to/X.jsonl.gz') or "
                "get_task('mrqa', file='path/to/X.jsonl.gz')"
            )
        return require_file(self.file)

    def make_example(self, context: str, qa: dict[str, Any], line_no: int) -> Example:
        answers = tuple(dict.fromkeys(a.strip() for a in qa["answers"] if a.strip()))
        detected = [d["text"].strip() for d in qa.get("detected_answers") or []]
        target = detected[0] if detected else answers[0]
        fields = {"context": context, "question": qa["question"].strip()}
        return Example(
            input=self.render(**fields),
            target=target,
            options=None,
            answers=answers,
            meta={"line": line_no, "qid": qa["qid"]},
            fields=fields,
        )

    def load(self, split: Split) -> list[Example]:
        path = self.split_path(split)
        return [self.make_example(context, qa, line_no) for line_no, context, qa, _ in read_mrqa(path)]

    def compute_metrics(self, predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        return squad_metrics(predictions, [ex.answers or (ex.target,) for ex in examples])



@register_task("squad")
class SQuAD(MRQA):
    """SQuAD v1.1 from MRQA's SQuAD.dev.jsonl.gz, the only SQuAD file in the shared data
    (10,507 questions over 2,067 contexts).

    Deterministic split by context, so no context is in both: a context is 'dev' when
    sha256(context text) read as an integer is 0 mod 10 (about 10% of contexts), else 'train'.
    There is no 'test' split. In-domain source task for the BioASQ transfer.
    """

    name = "squad"
    relative = Path("mrqa") / "SQuAD.dev.jsonl.gz"
    dev_modulus = 10

    def __init__(self, data_dir: str | Path | None = None, strict: bool = False, file: str | Path | None = None):
        super().__init__(data_dir, strict, file=file, name=self.name)

    def split_path(self, split: Split) -> Path:
        if split not in ("train", "dev"):
            raise DataError(f"squad has no split {split!r}; splits: train, dev (a fixed split of {self.relative})")
        if self.file is not None:
            return require_file(self.file)
        if self.data_dir is None:
            raise DataError("squad has no data directory; pass data_dir")
        return require_file(self.data_root / self.relative)

    @classmethod
    def is_dev(cls, context: str) -> bool:
        return int(hashlib.sha256(context.encode("utf-8")).hexdigest(), 16) % cls.dev_modulus == 0

    def load(self, split: Split) -> list[Example]:
        path = self.split_path(split)
        want_dev = split == "dev"
        return [
            self.make_example(context, qa, line_no)
            for line_no, context, qa, _ in read_mrqa(path)
            if self.is_dev(context) == want_dev
        ]


@register_task("bioasq")
class BioASQ(MRQA):
    """BioASQ from MRQA's out-of-domain dev file mrqa/BioASQ.jsonl.gz (1,504 questions).

    Evaluation only (split 'dev'): train on 'squad' and evaluate that prompt here (same format).
    """

    name = "bioasq"
    relative = Path("mrqa") / "BioASQ.jsonl.gz"

    def __init__(self, data_dir: str | Path | None = None, strict: bool = False, file: str | Path | None = None):
        super().__init__(data_dir, strict, file=file, name=self.name)

    def split_path(self, split: Split) -> Path:
        if split != "dev":
            raise DataError(
                f"bioasq has no split {split!r}: it is an out-of-domain evaluation set (split 'dev' only); "
                "train on 'squad'"
            )
        if self.file is not None:
            return require_file(self.file)
        if self.data_dir is None:
            raise DataError("bioasq has no data directory; pass data_dir")
        return require_file(self.data_root / self.relative)

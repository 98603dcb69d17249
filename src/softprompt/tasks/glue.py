"""GLUE tasks: SST-2, MRPC, QQP, each in a natural format (the default) and T5's format."""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Sequence

from softprompt.tasks.base import DataError, Example, Split, Task, TaskFormat
from softprompt.tasks.metrics import accuracy, binary_f1
from softprompt.tasks.readers import DataWarning, read_tsv, require_file
from softprompt.tasks.registry import register_task


@register_task("sst2", "sst-2")
class SST2(Task):
    """SST-2 sentiment.

    natural: 'sst2 sentence: <sentence>\nsentiment:' -> 'negative' | 'positive'
    t5:      'sst2 sentence: <sentence>' -> 'negative' | 'positive' (T5's, exact)

    A decoder-only model reading 'sst2 sentence: ... a great film positive' is not told that
    an answer follows; the decoder-only format ends in an answer cue, so the label word is the
    model's next word. Of the candidates in reports/format_selection.md (held-out train rows,
    no prompt), T5's text plus the cue '\nsentiment:' scored best on both shipped models (on
    Gemma 3 well above 'Review: ...\nSentiment:' and a question form ending in 'Answer:'), so
    SST-2's natural format keeps T5's field label.

    Files: glue/SST-2/{train,dev,test}.tsv (columns sentence, label; test has no labels).
    """

    name = "sst2"
    label_words = ("negative", "positive")
    primary_metric = "accuracy"
    formats = {
        "natural": TaskFormat("sst2 sentence: {sentence}\nsentiment:", ("negative", "positive")),
        "t5": TaskFormat("sst2 sentence: {sentence}", ("negative", "positive")),
    }
    _files = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}

    def split_path(self, split: Split) -> Path:
        if split not in self._files:
            raise DataError(f"sst2 has no split {split!r}")
        return require_file(self.data_root / "glue" / "SST-2" / self._files[split])

    def load(self, split: Split) -> list[Example]:
        path = self.split_path(split)
        examples = []
        for line_no, row in read_tsv(path):
            sentence = row.get("sentence")
            if not sentence or not sentence.strip():
                raise DataError(f"{path}:{line_no}: field 'sentence' is empty")
            label = row.get("label")
            if label is None:  # test split: no labels
                target = ""
            elif label in ("0", "1"):
                target = self.label_words[int(label)]
            else:
                raise DataError(f"{path}:{line_no}: field 'label' should be 0 or 1, got {label!r}")
            fields = {"sentence": sentence.strip()}
            examples.append(Example(input=self.render(**fields), target=target, options=self.label_words,
                                    meta={"line": line_no}, fields=fields))
        return examples

    def compute_metrics(self, predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        return {"accuracy": accuracy(predictions, [ex.target for ex in examples])}


# ===================================================================== paraphrase (MRPC, QQP)
PARAPHRASE_LABELS = ("not_equivalent", "equivalent")


class _ParaphraseTask(Task):
    """MRPC and QQP share one format so a prompt trained on one is evaluated on the other
    (the paper's QQP -> MRPC zero-shot transfer).

    natural: 'Sentence 1: <a>\nSentence 2: <b>\nQuestion: Do the two sentences mean the same
             thing?\nAnswer:' -> 'no' | 'yes' (identical for MRPC and QQP)
    t5:      '<prefix> sentence1: <a> sentence2: <b>' -> 'not_equivalent' | 'equivalent'; only
             the task prefix differs; set `prefix` (an instance attribute, e.g.
             `task.prefix = "mrpc"` on QQP, or "" on both) to make the inputs identical too.

    T5's label words are rare multi-token words a small decoder-only model scores poorly
    before training; 'no' / 'yes' after a question are what it expects to say there.
    Metrics: accuracy (primary) and F1 of the positive class. Accuracy is primary because F1
    of MRPC's majority class (68% positive) is maximised by always answering positive.
    """

    label_words = PARAPHRASE_LABELS
    primary_metric = "accuracy"
    prefix = ""
    formats = {
        "natural": TaskFormat("Sentence 1: {sentence1}\nSentence 2: {sentence2}\n"
                              "Question: Do the two sentences mean the same thing?\nAnswer:", ("no", "yes")),
        "t5": TaskFormat("{lead}sentence1: {sentence1} sentence2: {sentence2}", PARAPHRASE_LABELS),
    }

    def make_example(self, a: str, b: str, label: int | None, **meta) -> Example:
        fields = {"sentence1": a, "sentence2": b}
        lead = f"{self.prefix} " if self.prefix else ""
        return Example(
            input=self.render(lead=lead, **fields),
            target=self.label_words[label] if label is not None else "",
            options=self.label_words,
            meta=meta,
            fields=fields,
        )

    def compute_metrics(self, predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        refs = [ex.target for ex in examples]
        return {"accuracy": accuracy(predictions, refs), "f1": binary_f1(predictions, refs, self.label_words[1])}


def _sentence(row: list[str], column: int, name: str, path: Path, line_no: int) -> str:
    value = row[column].strip()
    if not value:
        raise DataError(f"{path}:{line_no}: field {name!r} is empty")
    return value


@register_task("mrpc")
class MRPC(_ParaphraseTask):
    """MRPC. T5 format (exact): 'mrpc sentence1: <s1> sentence2: <s2>' -> 'not_equivalent' | 'equivalent'.

    Splits, rebuilt from the original Microsoft files as GLUE defines them:
    train = msr_paraphrase_train.txt minus the pairs listed in dev_ids.tsv (3,668 pairs),
    dev = the pairs in dev_ids.tsv (408, in file order), test = msr_paraphrase_test.txt
    (1,725 pairs; the original file carries labels, so test is labelled). GLUE's train.tsv is
    not used: it lacks one pair (2750203/2750153).
    """

    name = "mrpc"
    prefix = "mrpc"
    _files = {"train": "msr_paraphrase_train.txt", "dev": "msr_paraphrase_train.txt", "test": "msr_paraphrase_test.txt"}
    columns = ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String")

    def folder(self) -> Path:
        return self.data_root / "glue" / "MRPC"

    def split_path(self, split: Split) -> Path:
        if split not in self._files:
            raise DataError(f"mrpc has no split {split!r}; splits: train, dev, test")
        return require_file(self.folder() / self._files[split])

    def dev_ids(self) -> set[tuple[str, str]]:
        path = require_file(self.folder() / "dev_ids.tsv")
        ids = set()
        for line_no, row in read_tsv(path, header=False):
            if len(row) != 2 or not all(x.strip() for x in row):
                raise DataError(f"{path}:{line_no}: expected two tab-separated ids (#1 ID, #2 ID), found {row!r:.80}")
            ids.add((row[0].strip(), row[1].strip()))
        return ids

    def load(self, split: Split) -> list[Example]:
        path = self.split_path(split)
        dev = self.dev_ids() if split in ("train", "dev") else set()
        examples = []
        for line_no, row in read_tsv(path, header=False):
            if line_no == 1:
                if tuple(c.strip() for c in row) != self.columns:
                    raise DataError(f"{path}:1: expected the header {' / '.join(self.columns)}, found {row!r:.120}")
                continue
            if len(row) != len(self.columns):
                raise DataError(
                    f"{path}:{line_no}: expected {len(self.columns)} tab-separated fields "
                    f"({', '.join(self.columns)}), found {len(row)}"
                )
            pair = (row[1].strip(), row[2].strip())
            if (pair in dev) != (split == "dev") and split != "test":
                continue
            if row[0] not in ("0", "1"):
                raise DataError(f"{path}:{line_no}: field 'Quality' should be 0 or 1, got {row[0]!r:.40}")
            a = _sentence(row, 3, "#1 String", path, line_no)
            b = _sentence(row, 4, "#2 String", path, line_no)
            examples.append(self.make_example(a, b, int(row[0]), line=line_no, ids=pair))
        if split == "dev" and len(examples) != len(dev):
            found = {ex.meta["ids"] for ex in examples}
            missing = sorted(dev - found)
            raise DataError(f"{path}: {len(missing)} pair(s) of dev_ids.tsv not found, e.g. {missing[0]}")
        return examples


@register_task("qqp")
class QQP(_ParaphraseTask):
    """QQP (an unofficial 23,497-pair sample of GLUE's QQP train).

    Format: 'qqp sentence1: <question1> sentence2: <question2>' -> 'not_equivalent' |
    'equivalent'. This departs from T5's 'qqp question1: ... question2: ...' ->
    'not_duplicate' | 'duplicate' on purpose: it shares MRPC's field names and label words,
    so a QQP prompt is scored on MRPC without a label mapping.

    File: glue/QQP/subset-unofficial.tsv, no header, columns id, qid1, qid2, question1,
    question2, is_duplicate. Split (deterministic, not official): a pair is dev when
    sha256(id) read as an integer is 0 mod 10 (about 10%), else train; there is no test split.
    Malformed rows (wrong number of fields, a label that is not 0/1, an empty question; the
    file's first line is one) are skipped with one warning that counts them, or raise a
    DataError naming file:line with strict=True.
    """

    name = "qqp"
    prefix = "qqp"
    file = "subset-unofficial.tsv"
    columns = ("id", "qid1", "qid2", "question1", "question2", "is_duplicate")
    dev_modulus = 10

    def split_path(self, split: Split) -> Path:
        if split not in ("train", "dev"):
            raise DataError(f"qqp has no split {split!r}; splits: train, dev (a fixed split of {self.file})")
        return require_file(self.data_root / "glue" / "QQP" / self.file)

    @classmethod
    def is_dev(cls, pair_id: str) -> bool:
        return int(hashlib.sha256(pair_id.encode("utf-8")).hexdigest(), 16) % cls.dev_modulus == 0

    def _problem(self, row: list[str]) -> str | None:
        if len(row) != len(self.columns):
            return f"expected {len(self.columns)} tab-separated fields ({', '.join(self.columns)}), found {len(row)}"
        if not row[0].strip():
            return "field 'id' is empty"
        for i, name in ((3, "question1"), (4, "question2")):
            if not row[i].strip():
                return f"field {name!r} is empty"
        if row[5].strip() not in ("0", "1"):
            return f"field 'is_duplicate' should be 0 or 1, got {row[5]!r:.40}"
        return None

    def load(self, split: Split) -> list[Example]:
        path = self.split_path(split)
        examples = []
        skipped: list[int] = []
        for line_no, row in read_tsv(path, header=False):
            problem = self._problem(row)
            if problem is not None:
                if self.strict:
                    raise DataError(f"{path}:{line_no}: {problem}")
                skipped.append(line_no)
                continue
            pair_id = row[0].strip()
            if self.is_dev(pair_id) != (split == "dev"):
                continue
            examples.append(self.make_example(
                row[3].strip(), row[4].strip(), int(row[5]), line=line_no, id=pair_id,
                qids=(row[1].strip(), row[2].strip()),
            ))
        if skipped:
            lines = ", ".join(map(str, skipped[:5])) + (", ..." if len(skipped) > 5 else "")
            warnings.warn(
                f"{path}: skipped {len(skipped)} malformed row(s) (line(s) {lines}); pass strict=True to stop at the first",
                DataWarning,
                stacklevel=2,
            )
        return examples

"""SuperGLUE tasks in T5's text-to-text formats (t5.data.preprocessors / glue_utils, v102).

Each task renders its rows in two formats (tasks.base.TaskFormat): `natural`, the default, a
natural-language input that ends in a question and an answer cue ('...\nAnswer:') with
single common answer words (yes/no, True/False/Neither), for decoder-only models; and `t5`,
T5's text-to-text format: '<task> <field>: <text> <field>: <text> ...' with T5's label words,
for encoder-decoder models. Zero-shot scores of both on rows held out from train are in
reports/format_selection.md. Each class's docstring states its formats and where (and why)
the t5 format departs from T5's. Two departures run through several tasks:

* Field order. The model truncates an over-long input to its last `max_input_tokens`
  tokens, so the part a decision hinges on (question, query, answer) must come last. Where
  T5 puts the long passage last (MultiRC, ReCoRD) the passage moves to the front; where T5's
  (alphabetical) order already ends with the short fields it is kept.
* Per-example options. COPA and ReCoRD are scored by rank classification over each
  example's own candidates (the two choices, the candidate entities) instead of T5's
  generated 'choice1'/'choice2' or free-text entity.

Files are the SuperGLUE v2 jsonl files under <data>/superglue/<Task>/: train.jsonl,
val.jsonl (split 'dev') and test.jsonl (no labels: target ""). The FewGLUE 32-example files
(fewglue32-train.jsonl, fewglue32-dev32.jsonl) load as splits of those names where present.
Every task also accepts `train_file=`, `dev_file=`, `test_file=` to read a split from a
file elsewhere (`get_task("boolq", train_file="path/to/train.jsonl")`).
"""
from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Sequence

from softprompt.tasks.base import DataError, Example, Split, Task, TaskFormat
from softprompt.tasks.metrics import (
    accuracy,
    gender_parity,
    macro_f1,
    matthews_corr,
    multirc_metrics,
    record_metrics,
)
from softprompt.tasks.readers import (
    bool_field,
    choice_field,
    field,
    read_jsonl,
    require_file,
    text_field,
)
from softprompt.tasks.registry import register_task

__all__ = ["AXb", "AXg", "BoolQ", "CB", "COPA", "MultiRC", "ReCoRD", "RTE", "SuperGLUETask", "WSC", "WiC"]

FALSE_TRUE = ("False", "True")  # T5's label words for every yes/no SuperGLUE task
NO_YES = ("no", "yes")  # the natural formats' answers to a yes/no question (class order False, True)


class SuperGLUETask(Task):
    """Shared loading for the SuperGLUE jsonl files: one row -> one or more Examples."""

    folder: str = ""
    files: dict[str, str] = {"train": "train.jsonl", "dev": "val.jsonl", "test": "test.jsonl"}
    # splits whose rows need not carry a label
    unlabelled_splits: tuple[str, ...] = ("test",)

    def __init__(
        self,
        data_dir: str | Path | None = None,
        strict: bool = False,
        train_file: str | Path | None = None,
        dev_file: str | Path | None = None,
        test_file: str | Path | None = None,
    ):
        super().__init__(data_dir, strict)
        self.split_files: dict[str, Path] = {
            split: Path(p) for split, p in (("train", train_file), ("dev", dev_file), ("test", test_file)) if p is not None
        }

    # ----------------------------------------------------------------- files
    def folder_path(self) -> Path:
        if self.data_dir is None:
            raise DataError(f"task {self.name!r} has no data directory; pass data_dir")
        return self.data_root / "superglue" / self.folder

    def split_names(self) -> list[str]:
        """Every split this task knows of (whether or not its file is present)."""
        return list(dict.fromkeys([*self.files, *self.split_files]))

    def split_path(self, split: Split | str) -> Path:
        if split in self.split_files:
            return require_file(self.split_files[split])
        if split not in self.files:
            raise DataError(f"{self.name} has no split {split!r}; splits: {', '.join(self.split_names())}")
        path = self.folder_path() / self.files[split]
        if not path.is_file():
            raise DataError(self.missing_file_message(split, path))
        return path

    def missing_file_message(self, split: str, path: Path) -> str:
        return f"{path}: file not found ({self.name} split {split!r})"

    # ----------------------------------------------------------------- loading
    def load(self, split: Split | str) -> list[Example]:
        path = self.split_path(split)
        labelled = split not in self.unlabelled_splits
        examples: list[Example] = []
        for line_no, row in read_jsonl(path):
            # A test row carries no label; one that does (the AX sets) is scored normally.
            has_label = labelled or "label" in row
            examples.extend(self.row_examples(row, path, line_no, has_label))
        if not examples:
            raise DataError(f"{path}: no examples")
        return examples

    def row_examples(self, row: dict[str, Any], path: Path, line_no: int, labelled: bool) -> list[Example]:
        raise NotImplementedError

    def _meta(self, row: dict[str, Any], line_no: int, **extra: Any) -> dict[str, Any]:
        return {"line": line_no, "idx": row.get("idx"), **extra}


class _LabelWordTask(SuperGLUETask):
    """A task whose examples share the label words; metric accuracy."""

    def compute_metrics(self, predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        return {"accuracy": accuracy(predictions, [ex.target for ex in examples])}


# ===================================================================== BoolQ
@register_task("boolq")
class BoolQ(_LabelWordTask):
    """BoolQ.

    natural: '<passage>\nQuestion: <question>?\nAnswer:' -> 'no' | 'yes'
    t5:      'boolq passage: <passage> question: <question>' -> 'False' | 'True' (exact)

    Metric: accuracy. The shared data has no BoolQ train split (only val.jsonl = 'dev',
    test.jsonl and the 32-example FewGLUE files, loadable as splits 'fewglue32-train' and
    'fewglue32-dev32'). Supply the full train file (SuperGLUE's BoolQ/train.jsonl, 9,427
    examples) by putting it at <data>/superglue/BoolQ/train.jsonl or by passing
    `train_file=PATH` (get_task("boolq", train_file=PATH)).
    """

    name = "boolq"
    folder = "BoolQ"
    label_words = FALSE_TRUE
    formats = {
        "natural": TaskFormat("{passage}\nQuestion: {question}?\nAnswer:", NO_YES),
        "t5": TaskFormat("boolq passage: {passage} question: {question}", FALSE_TRUE),
    }
    files = {
        "train": "train.jsonl", "dev": "val.jsonl", "test": "test.jsonl",
        "fewglue32-train": "fewglue32-train.jsonl", "fewglue32-dev32": "fewglue32-dev32.jsonl",
    }

    def missing_file_message(self, split: str, path: Path) -> str:
        if split == "train":
            return (
                f"BoolQ's train file is missing: {path} does not exist (the shared data has only "
                f"val.jsonl, test.jsonl and the 32-example fewglue32-train.jsonl). Put SuperGLUE's BoolQ "
                f"train.jsonl (9,427 examples) at that path, or pass train_file=PATH "
                f"(get_task('boolq', train_file=PATH)), or train on split 'fewglue32-train'."
            )
        return super().missing_file_message(split, path)

    def row_examples(self, row, path, line_no, labelled):
        passage = text_field(row, "passage", path, line_no)
        question = text_field(row, "question", path, line_no)
        target = self.label_words[bool_field(row, "label", path, line_no)] if labelled else ""
        fields = {"passage": passage, "question": question}
        return [Example(self.render(**fields), target, self.label_words, meta=self._meta(row, line_no),
                        fields=fields)]


# ===================================================================== CB
@register_task("cb")
class CB(SuperGLUETask):
    """CommitmentBank.

    natural: 'cb hypothesis: <hypothesis> premise: <premise>\nanswer:'
             -> 'entailment' | 'contradiction' | 'neutral'
    t5:      'cb hypothesis: <hypothesis> premise: <premise>' -> the same words (exact)

    The decoder-only format is T5's plus an answer cue: of the candidates in
    reports/format_selection.md it had the best mean balanced accuracy over both models
    (a question with True / False / Neither, and one with yes / no / maybe, scored lower).

    Metrics: accuracy and macro-F1 over the three classes; primary 'average' = their mean,
    which is CB's contribution to the SuperGLUE score.
    """

    name = "cb"
    folder = "CB"
    raw_labels = ("entailment", "contradiction", "neutral")  # the data's values, in class order
    label_words = raw_labels
    primary_metric = "average"
    formats = {
        "natural": TaskFormat("cb hypothesis: {hypothesis} premise: {premise}\nanswer:", raw_labels),
        "t5": TaskFormat("cb hypothesis: {hypothesis} premise: {premise}", raw_labels),
    }

    def row_examples(self, row, path, line_no, labelled):
        hypothesis = text_field(row, "hypothesis", path, line_no)
        premise = text_field(row, "premise", path, line_no)
        target = ""
        if labelled:
            target = self.label_words[self.raw_labels.index(choice_field(row, "label", path, line_no, self.raw_labels))]
        fields = {"premise": premise, "hypothesis": hypothesis}
        return [Example(self.render(**fields), target, self.label_words, meta=self._meta(row, line_no),
                        fields=fields)]

    def compute_metrics(self, predictions, examples):
        refs = [ex.target for ex in examples]
        acc = accuracy(predictions, refs)
        f1 = macro_f1(predictions, refs, self.label_words)
        return {"accuracy": acc, "macro_f1": f1, "average": (acc + f1) / 2}


# ===================================================================== COPA
def _lower_first(text: str) -> str:
    """'The sun rose.' -> 'the sun rose.', keeping 'I ...' and acronyms ('US ...') as they are."""
    first = text.split(" ", 1)[0]
    if first == "I" or first.startswith("I'") or (len(first) > 1 and first[:2].isupper()):
        return text
    return text[:1].lower() + text[1:]


@register_task("copa")
class COPA(SuperGLUETask):
    """COPA, as a continuation: the premise without its final period, then 'because' (question
    'cause') or 'so' (question 'effect'); options = the two choices with their first letter
    lower-cased (each example's own options); target = the correct choice.

    natural: '<premise> because' / '<premise> so'
    t5:      'copa premise: <premise> because' / '... so' (T5's prefix and field name)

    Why not T5's format ('copa choice1: ... choice2: ... premise: ... question: cause' ->
    'choice1' | 'choice2')? Rank classification with a causal LM works when the options are
    what the model can judge: the log-likelihood of each choice's own words as the premise's
    cause/effect uses what the frozen LM knows about plausibility, while 'choice1'/'choice2'
    asks the model to learn a pointer from two near-identical tokens to text earlier in the
    input. Options are scored by summed log-likelihood; the two choices are of similar length.
    Metric: accuracy (prediction = the chosen choice's text).
    """

    name = "copa"
    folder = "COPA"
    label_words = None  # per-example options
    formats = {
        "natural": TaskFormat("{premise} {connective}"),
        "t5": TaskFormat("copa premise: {premise} {connective}"),
    }
    connectives = {"cause": "because", "effect": "so"}

    def row_examples(self, row, path, line_no, labelled):
        premise = text_field(row, "premise", path, line_no)
        question = choice_field(row, "question", path, line_no, tuple(self.connectives))
        choices = tuple(_lower_first(text_field(row, k, path, line_no)) for k in ("choice1", "choice2"))
        if choices[0] == choices[1]:
            raise DataError(f"{path}:{line_no}: fields 'choice1' and 'choice2' are the same text")
        label = None
        if labelled:
            label = field(row, "label", path, line_no, int)
            if label not in (0, 1):
                raise DataError(f"{path}:{line_no}: field 'label' should be 0 or 1, got {label!r}")
        premise = premise[:-1] if premise.endswith(".") else premise
        fields = {"premise": premise, "connective": self.connectives[question]}
        return [Example(
            self.render(**fields),
            choices[label] if label is not None else "",
            choices,
            meta=self._meta(row, line_no, question=question, label=label),
            fields={**fields, "choice1": choices[0], "choice2": choices[1]},
        )]

    def compute_metrics(self, predictions, examples):
        return {"accuracy": accuracy(predictions, [ex.target for ex in examples])}


# ===================================================================== MultiRC
_HTML_BREAK = re.compile(r"<br\s*/?>")
_HTML_BOLD = re.compile(r"</?b>")


def _strip_markup(text: str) -> str:
    """T5's MultiRC cleaning: <br> -> space, <b>/</b> removed."""
    return " ".join(_HTML_BOLD.sub("", _HTML_BREAK.sub(" ", text)).split())


@register_task("multirc")
class MultiRC(SuperGLUETask):
    """MultiRC, one example per answer option:

    natural: '<paragraph>\nQuestion: <question>\nProposed answer: <answer>\nIs the proposed
             answer true or false?\nAnswer:' -> 'false' | 'true' (the better of two measured
             candidates, reports/format_selection.md)
    t5:      'multirc paragraph: <paragraph> question: <question> answer: <answer>'
             -> 'False' | 'True'

    T5's prefix, field names, label words and markup cleaning (<br>, <b>) with the paragraph
    moved first: T5 orders question, answer, paragraph, and a truncated long paragraph would
    then cut off the question and answer. `group` = '<passage idx>-<question idx>' ties a
    question's options together. Metrics: F1a (binary F1 over all answer options), EM (share
    of questions with every option right); primary 'average' = their mean.
    """

    name = "multirc"
    folder = "MultiRC"
    label_words = FALSE_TRUE
    primary_metric = "average"
    formats = {
        "natural": TaskFormat("{paragraph}\nQuestion: {question}\nProposed answer: {answer}\n"
                              "Is the proposed answer true or false?\nAnswer:", ("false", "true")),
        "t5": TaskFormat("multirc paragraph: {paragraph} question: {question} answer: {answer}", FALSE_TRUE),
    }

    def row_examples(self, row, path, line_no, labelled):
        passage = field(row, "passage", path, line_no, dict)
        paragraph = _strip_markup(text_field(passage, "text", path, line_no, "passage"))
        questions = field(passage, "questions", path, line_no, list, "passage")
        pidx = row.get("idx", line_no)
        examples = []
        for qi, q in enumerate(questions):
            where = f"passage.questions[{qi}]"
            question = _strip_markup(text_field(q, "question", path, line_no, where))
            qidx = q.get("idx", qi)
            answers = field(q, "answers", path, line_no, list, where)
            if not answers:
                raise DataError(f"{path}:{line_no}: field '{where}.answers' is empty")
            for ai, a in enumerate(answers):
                awhere = f"{where}.answers[{ai}]"
                # a few official answer options are empty strings: kept, they count in F1a
                answer = _strip_markup(field(a, "text", path, line_no, str, awhere))
                target = self.label_words[bool_field(a, "label", path, line_no, awhere)] if labelled else ""
                fields = {"paragraph": paragraph, "question": question, "answer": answer}
                examples.append(Example(
                    self.render(**fields),
                    target,
                    self.label_words,
                    fields=fields,
                    group=f"{pidx}-{qidx}",
                    meta={"line": line_no, "idx": {"paragraph": pidx, "question": qidx, "answer": a.get("idx", ai)}},
                ))
        return examples

    def compute_metrics(self, predictions, examples):
        scores = multirc_metrics(predictions, [ex.target for ex in examples], [ex.group for ex in examples],
                                 self.label_words[1])
        scores["average"] = (scores["f1a"] + scores["em"]) / 2
        return scores


# ===================================================================== ReCoRD
_HIGHLIGHT_AFTER_STOP = re.compile(r"([.?!\"'])\n@highlight\n")
_HIGHLIGHT = re.compile(r"\n@highlight\n")


@register_task("record")
class ReCoRD(SuperGLUETask):
    """ReCoRD, by rank classification over the candidate entities:

    natural: '<passage>\nQuery: <query with @placeholder>\nCandidates: <e1>, <e2>, ...\n
             Question: Which candidate does @placeholder stand for?\nAnswer:'
    t5:      'record passage: <passage> query: <query with @placeholder> entities: <e1>, <e2>, ...'

    options = the candidate entities (distinct, sorted, as TFDS lists them); target = the first
    gold answer; answers = every distinct gold answer.

    T5's prefix, field names and '@highlight' cleaning, with the passage moved first (T5 orders
    query, entities, passage) so truncating a long passage keeps the query. T5 generates the
    entity; choosing among the listed entities is the benchmark's own framing. One example per
    query (T5 repeats a training example once per gold answer). Metrics: max-over-answers EM
    and token F1 with SQuAD normalisation; primary 'average' = (F1 + EM) / 2.

    Only the FewGLUE files are in the shared data: splits 'fewglue32-train' and
    'fewglue32-dev32'. Put the full train.jsonl / val.jsonl into <data>/superglue/ReCoRD/, or
    pass train_file= / dev_file=, for splits 'train' / 'dev'.
    """

    name = "record"
    folder = "ReCoRD"
    label_words = None  # per-example options
    formats = {
        "natural": TaskFormat("{passage}\nQuery: {query}\nCandidates: {entities}\n"
                              "Question: Which candidate does @placeholder stand for?\nAnswer:"),
        "t5": TaskFormat("record passage: {passage} query: {query} entities: {entities}"),
    }
    primary_metric = "average"
    files = {
        "train": "train.jsonl", "dev": "val.jsonl", "test": "test.jsonl",
        "fewglue32-train": "fewglue32-train.jsonl", "fewglue32-dev32": "fewglue32-dev32.jsonl",
    }

    def missing_file_message(self, split: str, path: Path) -> str:
        if split in ("train", "dev", "test"):
            return (
                f"ReCoRD's {split} file is missing: {path} does not exist (the shared data has only the "
                f"32-example fewglue32-train.jsonl and fewglue32-dev32.jsonl: use splits 'fewglue32-train' / "
                f"'fewglue32-dev32'). Put the full file at that path or pass {split}_file=PATH."
            )
        return super().missing_file_message(split, path)

    @staticmethod
    def clean_passage(text: str) -> str:
        text = _HIGHLIGHT_AFTER_STOP.sub(r"\1 ", text)
        return _HIGHLIGHT.sub(". ", text)

    def row_examples(self, row, path, line_no, labelled):
        passage = field(row, "passage", path, line_no, dict)
        text = field(passage, "text", path, line_no, str, "passage")
        spans = field(passage, "entities", path, line_no, list, "passage")
        entities = set()
        for i, span in enumerate(spans):
            start = field(span, "start", path, line_no, int, f"passage.entities[{i}]")
            end = field(span, "end", path, line_no, int, f"passage.entities[{i}]")
            if not 0 <= start <= end < len(text):
                raise DataError(
                    f"{path}:{line_no}: field 'passage.entities[{i}]' span {start}..{end} lies outside the passage"
                )
            entities.add(text[start:end + 1].strip())  # ReCoRD's 'end' is inclusive
        entities.discard("")
        options = tuple(sorted(entities))
        if not options:
            raise DataError(f"{path}:{line_no}: field 'passage.entities' is empty")
        clean = self.clean_passage(text).strip()
        qas = field(row, "qas", path, line_no, list)
        examples = []
        for qi, qa in enumerate(qas):
            where = f"qas[{qi}]"
            query = text_field(qa, "query", path, line_no, where)
            answers: tuple[str, ...] = ()
            if labelled:
                raw = field(qa, "answers", path, line_no, list, where)
                answers = tuple(dict.fromkeys(
                    text_field(a, "text", path, line_no, f"{where}.answers[{ai}]") for ai, a in enumerate(raw)
                ))
                if not answers:
                    raise DataError(f"{path}:{line_no}: field '{where}.answers' is empty")
                outside = [a for a in answers if a not in entities]
                if outside:
                    raise DataError(
                        f"{path}:{line_no}: field '{where}.answers' has {outside[0]!r}, which is not a candidate entity"
                    )
            fields = {"passage": clean, "query": query, "entities": ", ".join(options)}
            examples.append(Example(
                self.render(**fields),
                answers[0] if answers else "",
                options,
                answers=answers,
                group=str(qa.get("idx", f"{row.get('idx', line_no)}-{qi}")),
                fields=fields,
                meta={"line": line_no, "idx": {"passage": row.get("idx"), "query": qa.get("idx")}},
            ))
        return examples

    def compute_metrics(self, predictions, examples):
        scores = record_metrics(predictions, [ex.answers or (ex.target,) for ex in examples])
        scores["average"] = (scores["f1"] + scores["em"]) / 2
        return scores


# ===================================================================== RTE and the diagnostics
RTE_LABELS = ("entailment", "not_entailment")


@register_task("rte")
class RTE(_LabelWordTask):
    """RTE.

    natural: '<premise>\nQuestion: <hypothesis> True or False?\nAnswer:' -> 'True' | 'False'
    t5:      'rte hypothesis: <hypothesis> premise: <premise>' -> 'entailment' | 'not_entailment'
             (T5's SuperGLUE format, exact)

    (T5 joins the SuperGLUE fields in alphabetical order; the 'rte sentence1: ... sentence2: ...'
    form is T5's GLUE RTE, whose files name the fields sentence1/sentence2.) Metric: accuracy.
    The diagnostics AX-b and AX-g are rendered in exactly this format, so an RTE prompt
    scores them.
    """

    name = "rte"
    folder = "RTE"
    raw_labels = RTE_LABELS  # the data's values, in class order
    label_words = RTE_LABELS
    formats = {
        "natural": TaskFormat("{premise}\nQuestion: {hypothesis} True or False?\nAnswer:", ("True", "False")),
        "t5": TaskFormat("rte hypothesis: {hypothesis} premise: {premise}", RTE_LABELS),
    }
    premise_field = "premise"
    hypothesis_field = "hypothesis"

    def row_examples(self, row, path, line_no, labelled):
        premise = text_field(row, self.premise_field, path, line_no)
        hypothesis = text_field(row, self.hypothesis_field, path, line_no)
        target = ""
        if labelled:
            target = self.label_words[self.raw_labels.index(choice_field(row, "label", path, line_no, self.raw_labels))]
        fields = {"premise": premise, "hypothesis": hypothesis}
        return [Example(
            self.render(**fields), target, self.label_words,
            group=self._group(row, line_no), meta=self._meta(row, line_no), fields=fields,
        )]

    def _group(self, row, line_no) -> str | None:
        return None


class _Diagnostic(RTE):
    """A SuperGLUE diagnostic set: labelled, evaluation only, in RTE's format."""

    unlabelled_splits = ()

    def missing_file_message(self, split: str, path: Path) -> str:
        return f"{path}: file not found ({self.name} is a diagnostic set, read from {self.files['dev']})"

    def split_path(self, split: Split | str) -> Path:
        if split == "train" and "train" not in self.split_files:
            raise DataError(
                f"{self.name} is a diagnostic set with no training data: train on 'rte' and evaluate "
                f"the RTE prompt on {self.name} (same format and label words)"
            )
        return super().split_path(split)


@register_task("axb", "ax-b")
class AXb(_Diagnostic):
    """AX-b (broad-coverage diagnostics), scored with RTE's format and label words:
    'rte hypothesis: <sentence2> premise: <sentence1>' (T5 renames sentence1 -> premise and
    sentence2 -> hypothesis). Splits 'dev' and 'test' both read AX-b.jsonl (labelled).
    Metrics: Matthews correlation (the benchmark's metric, primary) and accuracy.
    """

    name = "axb"
    folder = "AX-b"
    files = {"dev": "AX-b.jsonl", "test": "AX-b.jsonl"}
    premise_field = "sentence1"
    hypothesis_field = "sentence2"
    primary_metric = "matthews_corr"

    def _meta(self, row, line_no, **extra):
        return super()._meta(row, line_no, logic=row.get("logic"), **extra)

    def compute_metrics(self, predictions, examples):
        refs = [ex.target for ex in examples]
        return {"matthews_corr": matthews_corr(predictions, refs, self.label_words[0]),
                "accuracy": accuracy(predictions, refs)}


@register_task("axg", "ax-g")
class AXg(_Diagnostic):
    """AX-g (Winogender diagnostics), scored with RTE's format and label words:
    'rte hypothesis: <hypothesis> premise: <premise>'. Splits 'dev' and 'test' both read
    AX-g.jsonl (labelled). `group` pairs the two premises that differ only in the pronoun's
    gender (they share the hypothesis). Metrics: accuracy (primary) and gender parity (share
    of pairs predicted alike), as the SuperGLUE leaderboard reports them.
    """

    name = "axg"
    folder = "AX-g"
    files = {"dev": "AX-g.jsonl", "test": "AX-g.jsonl"}

    def _group(self, row, line_no):
        return row.get("hypothesis", "").strip()

    def _meta(self, row, line_no, **extra):
        return super()._meta(row, line_no, pair_id=row.get("pair_id"), **extra)

    def compute_metrics(self, predictions, examples):
        refs = [ex.target for ex in examples]
        return {"accuracy": accuracy(predictions, refs),
                "gender_parity": gender_parity(predictions, [ex.group for ex in examples])}


# ===================================================================== WiC
@register_task("wic")
class WiC(_LabelWordTask):
    """WiC.

    natural: 'Sentence 1: <s1>\nSentence 2: <s2>\nQuestion: Is the word "<word>" used with the
             same meaning in both sentences?\nAnswer:' -> 'no' | 'yes'
    t5:      'wic sentence1: <s1> sentence2: <s2> word: <word>' -> 'False' | 'True' (exact)

    T5 ignores the word's character offsets; so do we. Metric: accuracy.
    """

    name = "wic"
    folder = "WiC"
    label_words = FALSE_TRUE
    formats = {
        "natural": TaskFormat('Sentence 1: {sentence1}\nSentence 2: {sentence2}\nQuestion: Is the word "{word}" '
                              "used with the same meaning in both sentences?\nAnswer:", NO_YES),
        "t5": TaskFormat("wic sentence1: {sentence1} sentence2: {sentence2} word: {word}", FALSE_TRUE),
    }

    def row_examples(self, row, path, line_no, labelled):
        s1 = text_field(row, "sentence1", path, line_no)
        s2 = text_field(row, "sentence2", path, line_no)
        word = text_field(row, "word", path, line_no)
        target = self.label_words[bool_field(row, "label", path, line_no)] if labelled else ""
        fields = {"sentence1": s1, "sentence2": s2, "word": word}
        return [Example(self.render(**fields), target, self.label_words, meta=self._meta(row, line_no),
                        fields=fields)]


# ===================================================================== WSC
_STRIP = string.punctuation + "“”‘’"


def _norm_word(word: str) -> str:
    return word.strip(_STRIP).lower()


def _word_matches(word: str, span_word: str, last: bool) -> bool:
    w, target = _norm_word(word), _norm_word(span_word)
    # the span's last word may carry a possessive in the text: span 'Emma', text "Emma's"
    return w == target or last and w in (target + "'s", target + "’s")


def _find_span(words: list[str], index: int, span_text: str) -> int | None:
    """Where span_text starts in words: at `index`, else the nearest position (indices in
    the original WSC files are sometimes off by one or two), comparing words case- and
    punctuation-insensitively. None when the span is not there."""
    span = span_text.split()
    if not span:
        return None
    candidates = [index] + [index + d for k in range(1, 4) for d in (-k, k)]
    for i in candidates:
        if 0 <= i and i + len(span) <= len(words) and all(
            _word_matches(words[i + k], span[k], k == len(span) - 1) for k in range(len(span))
        ):
            return i
    return None


def _split_last(word: str, span_word: str) -> tuple[str, str]:
    """Split the text's last span word into the span part and what trails it
    ('Emma's' -> 'Emma', "'s"; 'him.' -> 'him', '.')."""
    core = span_word.strip(_STRIP)
    at = word.lower().find(core.lower()) if core else -1
    if at < 0:
        stripped = word.rstrip(_STRIP)
        return stripped, word[len(stripped):]
    cut = at + len(core)
    return word[:cut], word[cut:]


def mark_wsc_spans(text: str, span1: tuple[int, str], span2: tuple[int, str]) -> tuple[str, bool]:
    """T5's WSC marking: '* <noun phrase> *' and '# <pronoun> #' around the two spans.

    Returns the marked text and whether both spans were found. A span that is not found is
    left unmarked (T5's regex does the same).
    """
    words = text.split()
    found = []
    for (index, span_text), mark in ((span1, "*"), (span2, "#")):
        start = _find_span(words, index, span_text)
        if start is not None:
            found.append((start, start + len(span_text.split()), mark, span_text.split()[-1]))
    # insert marks from the right so earlier indices stay valid; skip overlapping spans
    found.sort(reverse=True)
    out = list(words)
    last_start = len(words) + 1
    for start, end, mark, span_last in found:
        if end > last_start:
            continue
        core, trailing = _split_last(out[end - 1], span_last)
        if core:
            out[start:end] = [mark, *out[start:end - 1], core, mark + trailing]
        else:
            out[start:end] = [mark, *out[start:end], mark]
        last_start = start
    return " ".join(out), len(found) == 2


_MARKED = {"*": re.compile(r"\* (.+?) \*"), "#": re.compile(r"# (.+?) #")}


def _unmark(marked: str) -> str:
    return _MARKED["#"].sub(r"\1", _MARKED["*"].sub(r"\1", marked))


@register_task("wsc")
class WSC(_LabelWordTask):
    """WSC: does the pronoun refer to the noun phrase?

    natural: '<text>\nQuestion: In the passage above, does "<pronoun>" refer to "<noun phrase>"?
             \nAnswer:' -> 'no' | 'yes'
    t5:      as T5's binary 'wsc' preprocessor has it: 'wsc text: <text>' with the candidate
             noun phrase marked '* ... *' and the pronoun '# ... #', -> 'False' | 'True'.

    T5's SuperGLUE mixture trains on 'wsc_simple' (generate the referent, positive examples
    only) instead; the binary form scores every example by rank classification and matches
    the benchmark's label and accuracy metric directly. Spans are located by word index,
    case- and punctuation-insensitively, allowing the off-by-one indices of the original
    files; a span that can not be found is left unmarked, as in T5 (meta['marked'] False).
    """

    name = "wsc"
    folder = "WSC"
    label_words = FALSE_TRUE
    formats = {
        "natural": TaskFormat('{text}\nQuestion: In the passage above, does "{pronoun}" refer to "{noun}"?\nAnswer:',
                              NO_YES),
        "t5": TaskFormat("wsc text: {marked}", FALSE_TRUE),
    }

    def row_examples(self, row, path, line_no, labelled):
        text = text_field(row, "text", path, line_no)
        target_obj = field(row, "target", path, line_no, dict)
        span1 = (field(target_obj, "span1_index", path, line_no, int, "target"),
                 text_field(target_obj, "span1_text", path, line_no, "target"))
        span2 = (field(target_obj, "span2_index", path, line_no, int, "target"),
                 text_field(target_obj, "span2_text", path, line_no, "target"))
        marked, ok = mark_wsc_spans(text, span1, span2)
        target = self.label_words[bool_field(row, "label", path, line_no)] if labelled else ""
        # the spans as the text has them (the files' span text may differ in case)
        noun, pronoun = (_MARKED[m].search(marked) for m in "*#")
        fields = {"text": _unmark(marked), "marked": marked, "noun": noun.group(1) if noun else span1[1],
                  "pronoun": pronoun.group(1) if pronoun else span2[1]}
        return [Example(self.render(**fields), target, self.label_words,
                        meta=self._meta(row, line_no, marked=ok), fields=fields)]

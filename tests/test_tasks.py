"""Tasks: real files load with the README's counts, formats, errors that name file:line:field,
QQP's skip-with-warning, custom task specs, and a tiny-model smoke run of every task."""
import functools
import gzip
import json
import os
import warnings
from pathlib import Path

import pytest
import torch

from softprompt.core.scoring import best_option
from softprompt.errors import DataError
from softprompt.tasks.custom import load_custom_task
from softprompt.tasks.glue import MRPC, QQP
from softprompt.tasks.qa import MRQA, SQuAD
from softprompt.tasks.readers import DataWarning
from softprompt.tasks.registry import get_task, resolve_data_dir, task_names
from softprompt.tasks.superglue import CB, MultiRC, mark_wsc_spans

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data() -> Path:
    try:
        return resolve_data_dir(os.environ.get("SOFTPROMPT_DATA_DIR") or REPO.parent / "shared" / "data")
    except DataError as err:
        pytest.skip(str(err))


@functools.lru_cache(maxsize=None)
def _load(data: Path, name: str, split: str, format: str = "t5"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return get_task(name, data, format=format).load(split)


def write(path: Path, lines) -> Path:
    """Write one line per item: strings as they are, anything else as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


# ============================================================ registry
def test_every_task_is_registered():
    names = set(task_names())
    assert {"boolq", "cb", "copa", "multirc", "record", "rte", "wic", "wsc", "axb", "axg",
            "mrpc", "qqp", "sst2", "squad", "bioasq", "mrqa"} <= names


# ============================================================ real files: counts (data README)
COUNTS = [
    ("boolq", "dev", 3270), ("boolq", "fewglue32-train", 32), ("boolq", "fewglue32-dev32", 32),
    ("cb", "train", 250), ("cb", "dev", 56), ("cb", "test", 250),
    ("copa", "train", 400), ("copa", "dev", 100), ("copa", "test", 500),
    ("multirc", "train", 27243), ("multirc", "dev", 4848), ("multirc", "test", 9693),
    ("rte", "train", 2490), ("rte", "dev", 277), ("rte", "test", 3000),
    ("wic", "train", 5428), ("wic", "dev", 638), ("wic", "test", 1400),
    ("wsc", "train", 554), ("wsc", "dev", 104), ("wsc", "test", 146),
    ("record", "fewglue32-train", 32), ("record", "fewglue32-dev32", 32),
    ("axb", "dev", 1104), ("axg", "dev", 356),
    ("mrpc", "train", 3668), ("mrpc", "dev", 408), ("mrpc", "test", 1725),
    ("bioasq", "dev", 1504),
]


@pytest.mark.parametrize("format", ["t5", "natural"])
@pytest.mark.parametrize("name,split,count", COUNTS, ids=[f"{n}-{s}" for n, s, _ in COUNTS])
def test_real_counts(data, name, split, count, format):
    examples = _load(data, name, split, format)
    assert len(examples) == count
    if split == "test" and name not in ("mrpc",):
        assert all(ex.target == "" for ex in examples)
    else:
        assert all(ex.target for ex in examples)
    task = get_task(name, data, format=format)
    if task.kind == "classification":
        assert all(ex.options and (ex.target == "" or ex.target in ex.options) for ex in examples)
        if task.label_words is not None:
            assert all(ex.options == task.label_words for ex in examples)
    else:
        assert all(ex.options is None and ex.answers and ex.target for ex in examples)


def test_multirc_passages_and_groups(data):
    for split, passages, questions in (("train", 456, 5131), ("dev", 83, 953), ("test", 166, 1820)):
        examples = _load(data, "multirc", split)
        assert len({ex.meta["line"] for ex in examples}) == passages
        assert len({ex.group for ex in examples}) == questions


def test_natural_formats_end_in_an_answer_cue_with_single_word_labels(data):
    rte = _load(data, "rte", "train", "natural")[0]
    assert rte.input == ("No Weapons of Mass Destruction Found in Iraq Yet.\n"
                         "Question: Weapons of Mass Destruction Found in Iraq. True or False?\nAnswer:")
    assert rte.target == "False"  # not_entailment
    assert rte.fields == {"premise": "No Weapons of Mass Destruction Found in Iraq Yet.",
                          "hypothesis": "Weapons of Mass Destruction Found in Iraq."}
    cb = _load(data, "cb", "train", "natural")[0]
    assert cb.input.startswith("cb hypothesis: the language was peeled down premise: ")
    assert cb.input.endswith("\nanswer:")
    assert cb.target == "entailment"
    boolq = _load(data, "boolq", "dev", "natural")[0]
    assert boolq.input.endswith("\nQuestion: does ethanol take more energy make that produces?\nAnswer:")
    assert boolq.target == "no"
    copa = _load(data, "copa", "train", "natural")[0]
    assert copa.input == "My body cast a shadow over the grass because"
    wic = _load(data, "wic", "train", "natural")[0]
    assert wic.input.endswith('Question: Is the word "place" used with the same meaning in both sentences?\nAnswer:')
    wsc = _load(data, "wsc", "train", "natural")[0]
    assert wsc.input.startswith("Mark told Pete many lies about himself,")
    assert wsc.input.endswith('Question: In the passage above, does "He" refer to "Mark"?\nAnswer:')
    assert wsc.target == "no"
    multirc = _load(data, "multirc", "train", "natural")[0]
    assert multirc.input.endswith("Proposed answer: Children, Gerd, or Dorian Popa\n"
                                  "Is the proposed answer true or false?\nAnswer:")
    assert multirc.target == "false"
    record = _load(data, "record", "fewglue32-train", "natural")[0]
    assert record.input.endswith("Question: Which candidate does @placeholder stand for?\nAnswer:")
    assert record.target == "Olimpija Ljubljana"
    mrpc = _load(data, "mrpc", "train", "natural")[0]
    assert mrpc.input.startswith("Sentence 1: Amrozi accused his brother")
    assert mrpc.target == "yes"
    assert _load(data, "qqp", "train", "natural")[0].input.endswith("mean the same thing?\nAnswer:")
    sst2 = _load(data, "sst2", "train", "natural")[0]
    assert sst2.input.startswith("sst2 sentence: ")
    assert sst2.input.endswith("\nsentiment:")
    squad = _load(data, "squad", "train", "natural")[0]
    assert squad.input.endswith("\nQuestion: Which NFL team represented the AFC at Super Bowl 50?\nAnswer:")


def test_natural_is_the_default_format_and_a_bad_format_names_the_field(data):
    assert get_task("rte", data).format == "natural"
    assert get_task("rte", data).label_words == ("True", "False")
    assert get_task("rte", data, format="t5").label_words == ("entailment", "not_entailment")
    with pytest.raises(DataError, match="format"):
        get_task("rte", data, format="gpt")


def test_t5_formats(data):
    rte = _load(data, "rte", "train")[0]
    assert rte.input == ("rte hypothesis: Weapons of Mass Destruction Found in Iraq. "
                         "premise: No Weapons of Mass Destruction Found in Iraq Yet.")
    assert rte.target == "not_entailment"
    cb = _load(data, "cb", "train")[0]
    assert cb.input.startswith("cb hypothesis: the language was peeled down premise: It was a complex language.")
    assert cb.target == "entailment"
    boolq = _load(data, "boolq", "dev")[0]
    assert boolq.input.startswith("boolq passage: Ethanol fuel -- ")
    assert boolq.input.endswith(" question: does ethanol take more energy make that produces")
    assert boolq.target == "False"
    copa = _load(data, "copa", "train")[0]
    assert copa.input == "copa premise: My body cast a shadow over the grass because"
    assert copa.options == ("the sun was rising.", "the grass was cut.")
    assert copa.target == "the sun was rising."
    wic = _load(data, "wic", "train")[0]
    assert wic.input == ("wic sentence1: Do you want to come over to my place later? "
                         "sentence2: A political system with no place for the less prominent groups. word: place")
    wsc = _load(data, "wsc", "train")[0]
    assert wsc.input.startswith("wsc text: * Mark * told Pete many lies about himself,")
    assert "# He # should" in wsc.input
    assert wsc.target == "False"
    multirc = _load(data, "multirc", "train")[0]
    assert multirc.input.startswith("multirc paragraph: While this process moved along,")
    assert multirc.input.endswith("question: What did the high-level effort to persuade Pakistan include? "
                                  "answer: Children, Gerd, or Dorian Popa")
    assert multirc.group == "0-0"
    assert multirc.target == "False"
    record = _load(data, "record", "fewglue32-train")[0]
    assert record.input.startswith("record passage: By Hamish Mackay Goals from Diego Costa")
    assert "@highlight" not in record.input
    assert " query: Speaking after the game, Mourinho said:" in record.input
    assert record.input.endswith("entities: " + ", ".join(record.options))
    assert record.target == "Olimpija Ljubljana"
    assert record.answers == ("Olimpija Ljubljana",)
    assert "Kurt Zouma" in record.options
    assert len(set(record.options)) == len(record.options)
    axb = _load(data, "axb", "dev")[0]
    assert axb.input == "rte hypothesis: The cat did not sit on the mat. premise: The cat sat on the mat."
    mrpc = _load(data, "mrpc", "train")[0]
    assert mrpc.input.startswith("mrpc sentence1: Amrozi accused his brother")
    assert mrpc.target == "equivalent"
    squad = _load(data, "squad", "train")[0]
    assert squad.input.startswith("context: Super Bowl 50 was an American football game")
    assert squad.input.endswith("question: Which NFL team represented the AFC at Super Bowl 50?")
    assert squad.target == "Denver Broncos"
    assert squad.answers == ("Denver Broncos",)


def test_wsc_marking_follows_t5():
    assert mark_wsc_spans("This is a test sentence .", (3, "test"), (0, "This")) == ("# This # is a * test * sentence .", True)
    # off-by-one index, case and possessive still found; trailing punctuation stays outside
    assert mark_wsc_spans("Then the lawyer's dog bit him.", (0, "The lawyer"), (5, "him")) == (
        "Then * the lawyer *'s dog bit # him #.", True)
    assert mark_wsc_spans("Nobody here.", (0, "Anna"), (1, "here"))[1] is False


def test_axg_pairs(data):
    examples = _load(data, "axg", "dev")
    groups = {}
    for ex in examples:
        groups.setdefault(ex.group, []).append(ex)
    assert len(groups) == 178
    assert all(len(v) == 2 for v in groups.values())
    task = get_task("axg", data)
    scores = task.compute_metrics([ex.target for ex in examples], examples)
    assert scores["accuracy"] == 100.0
    assert task.primary_metric in scores


def test_superglue_metrics_keys(data):
    cb = get_task("cb", data, format="t5")
    dev = _load(data, "cb", "dev")
    scores = cb.compute_metrics([ex.target for ex in dev], dev)
    assert scores == {"accuracy": 100.0, "macro_f1": 100.0, "average": 100.0}
    mrc = get_task("multirc", data, format="t5")
    dev = _load(data, "multirc", "dev")
    always_true = mrc.compute_metrics(["True"] * len(dev), dev)
    assert 0 < always_true["f1a"] < 100
    assert always_true["average"] == pytest.approx( (always_true["f1a"] + always_true["em"]) / 2)
    axb = get_task("axb", data, format="t5")
    dev = _load(data, "axb", "dev")
    assert axb.compute_metrics(["entailment"] * len(dev), dev)["matthews_corr"] == 0.0
    # the natural format's words are scored the same way
    natural = get_task("multirc", data)
    ndev = _load(data, "multirc", "dev", "natural")
    assert natural.compute_metrics(["true"] * len(ndev), ndev) == always_true


# ============================================================ BoolQ / ReCoRD missing files
def test_boolq_missing_train_says_what_to_do(data, tmp_path):
    with pytest.raises(DataError) as err:
        get_task("boolq", data).load("train")
    message = str(err.value)
    assert "BoolQ's train file is missing" in message
    assert "train_file" in message
    assert "superglue/BoolQ/train.jsonl" in message
    row = {"question": "is it", "passage": "It is.", "idx": 0, "label": True}
    train = write(tmp_path / "boolq_train.jsonl", [row, {**row, "label": False, "idx": 1}])
    examples = get_task("boolq", data, train_file=train).load("train")
    assert [ex.target for ex in examples] == ["yes", "no"]
    assert "train" in get_task("boolq", data, train_file=train).available_splits()


def test_record_needs_full_files(data):
    with pytest.raises(DataError, match="fewglue32-dev32"):
        get_task("record", data).load("dev")


def test_diagnostics_have_no_train(data):
    with pytest.raises(DataError, match="train on 'rte'"):
        get_task("axb", data).load("train")


# ============================================================ malformed rows name file:line:field
def _cb(tmp_path, rows):
    path = write(tmp_path / "cb_train.jsonl", rows)
    return CB(tmp_path, train_file=path), path


GOOD_CB = {"premise": "p", "hypothesis": "h", "label": "neutral", "idx": 0}


@pytest.mark.parametrize("bad,expect", [
    ({**GOOD_CB, "label": "maybe"}, "field 'label' should be one of"),
    ({k: v for k, v in GOOD_CB.items() if k != "premise"}, "missing field 'premise'"),
    ({**GOOD_CB, "hypothesis": "  "}, "field 'hypothesis' is empty"),
    ({**GOOD_CB, "premise": 3}, "field 'premise' should be str"),
    ("{not json", "not valid JSON"),
])
def test_superglue_errors_name_file_line_field(tmp_path, bad, expect):
    task, path = _cb(tmp_path, [GOOD_CB, bad])
    with pytest.raises(DataError) as err:
        task.load("train")
    assert f"{path}:2: " in str(err.value)
    assert expect in str(err.value)


def test_nested_field_errors(tmp_path):
    row = {"idx": 0, "passage": {"text": "P.", "questions": [
        {"question": "Q?", "idx": 0, "answers": [{"text": "a", "label": 1}, {"text": "b"}]}]}}
    path = write(tmp_path / "mrc.jsonl", [row])
    with pytest.raises(DataError) as err:
        MultiRC(tmp_path, train_file=path).load("train")
    assert f"{path}:1: missing field 'passage.questions[0].answers[1].label'" in str(err.value)
    mrqa = tmp_path / "X.jsonl.gz"
    with gzip.open(mrqa, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"header": {"dataset": "X"}}) + "\n")
        f.write(json.dumps({"context": "C", "qas": [{"qid": "1", "answers": ["a"]}]}) + "\n")
    with pytest.raises(DataError) as err:
        get_task(str(mrqa)).load("dev")
    assert f"{mrqa}:2: missing field 'qas[0].question'" in str(err.value)


def test_mrpc_malformed_row(tmp_path):
    folder = tmp_path / "glue" / "MRPC"
    header = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"
    write(folder / "msr_paraphrase_train.txt", [header, "1\t1\t2\tA a.\tB b.", "2\t3\t4\tC c.\tD d.", "0\t5\t6\tE.\tF."])
    write(folder / "dev_ids.tsv", ["5\t6"])
    task = MRPC(tmp_path)
    assert [ex.meta["ids"] for ex in task.load("dev")] == [("5", "6")]
    with pytest.raises(DataError) as err:
        task.load("train")
    assert "msr_paraphrase_train.txt:3: field 'Quality' should be 0 or 1" in str(err.value)


# ============================================================ QQP: skip with one warning / strict
def test_qqp_real_file_split_and_warning(data):
    task = get_task("qqp", data)
    with pytest.warns(DataWarning, match=r"skipped 1 malformed row\(s\) \(line\(s\) 1\)") as record:
        train = task.load("train")
    assert len([w for w in record if issubclass(w.category, DataWarning)]) == 1
    dev = _load(data, "qqp", "dev")
    assert len(train) + len(dev) == 23496
    assert 0.08 < len(dev) / 23496 < 0.12
    assert not {ex.meta["id"] for ex in train} & {ex.meta["id"] for ex in dev}
    assert dev[0].input.startswith("qqp sentence1: ")
    assert " sentence2: " in dev[0].input
    assert task.label_words == get_task("mrpc", data).label_words  # shared format for transfer
    with pytest.raises(DataError, match=r"subset-unofficial\.tsv:1: expected 6 tab-separated fields"):
        get_task("qqp", data, strict=True).load("train")


def test_qqp_counts_every_skipped_row(tmp_path):
    rows = ["1\t1\t2\tq one?\tq two? 0", "2\t3\t4\tA?\tB?\t1", "3\t5\t6\tC?\t\t0", "4\t7\t8\tE?\tF?\tyes"]
    rows += [f"{i}\t{i}\t{i}\tQ{i}?\tR{i}?\t0" for i in range(10, 40)]
    write(tmp_path / "glue" / "QQP" / "subset-unofficial.tsv", rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        examples = QQP(tmp_path).load("train") + QQP(tmp_path).load("dev")
    ours = [w for w in caught if issubclass(w.category, DataWarning)]
    assert len(ours) == 2  # one per load, each counting all three bad rows
    assert "skipped 3 malformed row(s) (line(s) 1, 3, 4)" in str(ours[0].message)
    assert len(examples) == 31
    with pytest.raises(DataError, match=r"subset-unofficial\.tsv:1: "):
        QQP(tmp_path, strict=True).load("dev")


# ============================================================ QA
def test_squad_split_is_by_context(data):
    train, dev = _load(data, "squad", "train"), _load(data, "squad", "dev")
    assert len(train) + len(dev) == 10507
    assert 0.08 < len(dev) / 10507 < 0.13
    contexts = lambda exs: {ex.input.split(" question: ")[0] for ex in exs}  # noqa: E731
    assert not contexts(train) & contexts(dev)
    assert all(SQuAD.is_dev(ex.input[len("context: "):].split(" question: ")[0]) for ex in dev[:50])
    with pytest.raises(DataError, match="no split 'test'"):
        get_task("squad", data).load("test")


def test_mrqa_generic_by_path(data):
    path = data / "mrqa" / "BioASQ.jsonl.gz"
    task = get_task(str(path))
    assert isinstance(task, MRQA)
    assert task.name == "bioasq"
    assert task.kind == "generation"
    assert len(task.load("dev")) == 1504
    assert len(get_task("mrqa", data, file=path).load("dev")) == 1504
    with pytest.raises(DataError, match="needs a file"):
        get_task("mrqa", data).load("dev")
    with pytest.raises(DataError, match="train on 'squad'"):
        get_task("bioasq", data).load("train")
    examples = _load(data, "bioasq", "dev")[:3]
    scores = task.compute_metrics([ex.answers[0] for ex in examples], examples)
    assert scores == {"em": 100.0, "f1": 100.0}


# ============================================================ custom tasks
def _spec(tmp_path, text, name="task.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_custom_classification_round_trip(tmp_path):
    write(tmp_path / "train.jsonl", [{"text": "great fun", "stars": 5, "label": 1},
                                     {"text": "dull", "stars": 1.0, "label": 0}])
    (tmp_path / "dev.csv").write_text('text,stars,label\n"good, really",4,1\nbad,2,0\n', encoding="utf-8")
    (tmp_path / "test.tsv").write_text("text\tstars\nfine\t3\n", encoding="utf-8")
    spec = _spec(tmp_path, (
        "name: reviews\n"
        "data: {train: train.jsonl, dev: dev.csv, test: test.tsv}\n"
        'input: "review: {text} stars: {stars}"\n'
        "target: label\n"
        "label_map: {0: negative, 1: positive}\n"
        "metric: f1\n"
    ))
    task = get_task(str(spec))
    assert task.name == "reviews"
    assert task.kind == "classification"
    assert task.label_words == ("negative", "positive")
    assert task.primary_metric == "f1"
    train = task.load("train")
    assert [(ex.input, ex.target) for ex in train] == [
        ("review: great fun stars: 5", "positive"), ("review: dull stars: 1", "negative")]
    dev = task.load("dev")
    assert dev[0].input == "review: good, really stars: 4"
    assert dev[0].meta["line"] == 2
    assert task.load("test")[0].target == ""
    scores = task.compute_metrics(["positive", "positive"], dev)
    assert scores == {"accuracy": 50.0, "f1": pytest.approx(100 * 2 / 3)}
    assert task.available_splits() == ["train", "dev", "test"]


def test_custom_generation_and_json_spec(tmp_path):
    write(tmp_path / "qa.jsonl", [{"q": "capital of France?", "a": ["Paris", "paris"]}])
    spec = _spec(tmp_path, json.dumps({"data": {"dev": "qa.jsonl"}, "input": "question: {q}", "target": "a"}), "qa.json")
    task = load_custom_task(spec)
    assert task.name == "qa"
    assert task.kind == "generation"
    assert task.primary_metric == "f1"
    (ex,) = task.load("dev")
    assert ex.options is None
    assert ex.target == "Paris"
    assert ex.answers == ("Paris", "paris")
    assert task.compute_metrics(["the paris"], [ex]) == {"em": 100.0, "f1": 100.0}


@pytest.mark.parametrize("text,expect", [
    ("data: {train: t.jsonl}\ninput: '{x}'\ntarget: y\nlabel_words: [a, b]\ncolour: red\n", "unknown key 'colour'"),
    ("data: {train: t.jsonl}\ntarget: y\nlabel_words: [a, b]\n", "missing key 'input'"),
    ("data: {train: t.jsonl}\ninput: 'no fields'\ntarget: y\nlabel_words: [a, b]\n", "key 'input'"),
    ("data: {train: t.jsonl}\ninput: '{x}'\ntarget: y\nkind: classification\n", "missing key 'label_words'"),
    ("data: {train: t.jsonl}\ninput: '{x}'\ntarget: y\nlabel_words: [a, b]\nmetric: bleu\n", "key 'metric'"),
    ("data: {train: t.parquet}\ninput: '{x}'\ntarget: y\nlabel_words: [a, b]\n", "key 'data.train'"),
    ("data: [oops\n", "not valid YAML"),
])
def test_custom_spec_validation(tmp_path, text, expect):
    spec = _spec(tmp_path, text)
    with pytest.raises(DataError) as err:
        get_task(str(spec))
    assert str(err.value).startswith(str(spec))
    assert expect in str(err.value)


@pytest.mark.parametrize("row,expect", [
    ({"x": "hi", "y": "c"}, "field 'y' has value 'c', not one of the label words"),
    ({"y": "a"}, "missing field 'x' (used by the input template)"),
    ({"x": "hi"}, "missing field 'y' (the target field)"),
])
def test_custom_row_errors_name_file_line_field(tmp_path, row, expect):
    data_file = write(tmp_path / "t.jsonl", [{"x": "ok", "y": "a"}, row])
    spec = _spec(tmp_path, "data: {train: t.jsonl}\ninput: 'text: {x}'\ntarget: y\nlabel_words: [a, b]\n")
    with pytest.raises(DataError) as err:
        get_task(str(spec)).load("train")
    assert str(err.value).startswith(f"{data_file}:2: ")
    assert expect in str(err.value)


def test_custom_csv_row_error(tmp_path):
    (tmp_path / "t.csv").write_text("x,y\nok,a\ntoo,many,fields\n", encoding="utf-8")
    spec = _spec(tmp_path, "data: {train: t.csv}\ninput: '{x}'\ntarget: y\nlabel_words: [a, b]\n")
    with pytest.raises(DataError, match=r"t\.csv:3: expected 2 fields"):
        get_task(str(spec)).load("train")


# ============================================================ every task on a tiny model
SMOKE = [("boolq", "dev"), ("cb", "dev"), ("copa", "dev"), ("multirc", "dev"), ("record", "fewglue32-dev32"),
         ("rte", "dev"), ("wic", "dev"), ("wsc", "dev"), ("axb", "dev"), ("axg", "dev"), ("mrpc", "dev"),
         ("qqp", "dev"), ("sst2", "dev"), ("squad", "dev"), ("bioasq", "dev")]


@pytest.fixture(scope="module")
def tiny_lm():
    from tiny import tiny_llama

    torch.set_num_threads(1)
    lm = tiny_llama()
    lm.max_input_tokens = 48  # keep the smoke run fast; inputs keep their end
    return lm


@pytest.mark.parametrize("name,split", SMOKE, ids=[n for n, _ in SMOKE])
def test_tiny_model_runs_every_task(data, tiny_lm, name, split):
    task = get_task(name, data)
    examples = _load(data, name, split)[:3]
    if task.kind == "classification":
        scores = tiny_lm.score_options([ex.input for ex in examples], [ex.options for ex in examples])
        assert [len(s) for s in scores] == [len(ex.options) for ex in examples]
        predictions = [ex.choices[best_option(s)] for ex, s in zip(examples, scores)]
    else:
        predictions = tiny_lm.generate([ex.input for ex in examples], max_new_tokens=4)
        assert len(predictions) == len(examples)
        assert all(isinstance(p, str) for p in predictions)
    metrics = task.compute_metrics(predictions, examples)
    assert task.primary_metric in metrics
    if "accuracy" in metrics:  # recomputed by hand: the share of predictions equal to the gold target
        expected = 100 * sum(p == ex.target for p, ex in zip(predictions, examples)) / len(examples)
        assert metrics["accuracy"] == pytest.approx(expected)

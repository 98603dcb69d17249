"""Prompt design: the paper's hand-written-prompt baseline (GPT-3 style), no training at all.

Each built-in classification task has a hand-written natural-language template: an
instruction, a body that places the example's fields in plain English, and a verbalizer that
maps every label word to a natural answer word (e.g. RTE's 'not_entailment' -> 'False'). The
model scores the verbalized options after the filled template by the same rank
classification prompt tuning is evaluated with (summed log-likelihood, argmax), predictions
map back to the task's label words, and the task's own metric scores them.

    zero-shot:  <instruction>\\n\\n<body(example)>
    k-shot:     <instruction>\\n\\n<body(demo_1)> <answer_1>\\n\\n ... <body(demo_k)> <answer_k>\\n\\n<body(example)>

The k demonstrations are drawn once (seeded) from the train split and prepended, in the same
order, to every evaluation example. Inputs longer than the model's max_input_tokens keep
their end (the example and its question), so long k-shot contexts lose their first demos.

The fields come from the example's own structured fields (`Example.fields`, whatever format
the task renders); examples without them (built by hand in T5's 'task field: ... field: ...'
text) are parsed back by one regular expression per task. The verbalizer is keyed by T5's
label words; a task in another format is mapped class by class. `TEMPLATES` documents them
all, and `softprompt experiment templates` prints them.
"""
from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

from softprompt.core.model import PromptedLM
from softprompt.core.scoring import best_option
from softprompt.errors import SoftPromptError
from softprompt.evaluation.evaluator import EvalResult, predict
from softprompt.tasks.base import Example, Task


@dataclass(frozen=True)
class DesignTemplate:
    """A hand-written prompt for one task.

    parse:       regex over the task's example input; its named groups are the fields.
    instruction: the task description placed once at the top.
    body:        str.format template over the fields; ends where the answer goes.
    verbalizer:  label word -> the answer word scored after the body (None: the example's
                 own options as they are, e.g. COPA's choices).
    prepare:     optional transformation of the parsed fields (e.g. WSC's marked spans).
    """

    task: str
    parse: str
    instruction: str
    body: str
    verbalizer: Mapping[str, str] | None = None
    prepare: Callable[[dict[str, str]], dict[str, str]] | None = None

    def fields(self, example: Example) -> dict[str, str]:
        if example.fields:
            fields = dict(example.fields)
            return self.prepare(fields) if self.prepare else fields
        match = re.match(self.parse, example.input, re.DOTALL)
        if match is None:
            raise SoftPromptError(
                f"prompt design for {self.task!r}: the example input does not have the expected format "
                f"({self.parse}): {example.input[:120]!r}"
            )
        fields = {k: v.strip() for k, v in match.groupdict().items()}
        return self.prepare(fields) if self.prepare else fields

    def fill(self, example: Example) -> str:
        return self.body.format(**self.fields(example))

    def options(self, example: Example, class_words: Sequence[str] | None = None) -> tuple[str, ...]:
        """The answer words scored for this example. class_words: T5's label words in class
        order, when the example's options are another format's words for the same classes."""
        if example.options is None:
            raise SoftPromptError(f"prompt design needs a classification task; {self.task!r} examples have no options")
        if self.verbalizer is None:
            return tuple(example.options)
        keys = class_words if class_words is not None else example.options
        return tuple(self.verbalizer[k] for k in keys)

    def answer(self, example: Example, class_words: Sequence[str] | None = None) -> str:
        if self.verbalizer is None:
            return example.target
        if class_words is not None and example.options is not None:
            return self.verbalizer[class_words[example.options.index(example.target)]]
        return self.verbalizer[example.target]


def _question_mark(fields: dict[str, str]) -> dict[str, str]:
    q = fields["question"]
    return {**fields, "question": q if q.endswith("?") else q[:1].upper() + q[1:] + "?"}


_WSC_NOUN = re.compile(r"\* (.+?) \*")
_WSC_PRONOUN = re.compile(r"# (.+?) #")


def _wsc_spans(fields: dict[str, str]) -> dict[str, str]:
    """'* the council *' / '# they #' marks (tasks.superglue.mark_wsc_spans) -> fields
    noun, pronoun, and the text without marks (structured fields carry them already)."""
    if "noun" in fields and "pronoun" in fields:
        return fields
    marked = fields["text"]
    noun = _WSC_NOUN.search(marked)
    pronoun = _WSC_PRONOUN.search(marked)
    text = _WSC_PRONOUN.sub(r"\1", _WSC_NOUN.sub(r"\1", marked))
    return {"text": text, "noun": noun.group(1) if noun else "", "pronoun": pronoun.group(1) if pronoun else ""}


YES_NO = {"False": "no", "True": "yes"}
# A task format may end with an answer cue on its own line (SST-2: '\nsentiment:'): not a field.
_CUE = r"(?:\n[\w ]{1,40}:)?$"
_RTE = DesignTemplate(
    task="rte",
    parse=r"^rte hypothesis: (?P<hypothesis>.*?) premise: (?P<premise>.*?)" + _CUE,
    instruction="Read the passage and decide whether the statement after it is true, judging only by the passage.",
    body="{premise}\nQuestion: {hypothesis} True or False?\nAnswer:",
    verbalizer={"entailment": "True", "not_entailment": "False"},
)

TEMPLATES: dict[str, DesignTemplate] = {
    "sst2": DesignTemplate(
        task="sst2",
        parse=r"^sst2 sentence: (?P<sentence>.*?)" + _CUE,
        instruction="Classify the sentiment of each movie review as positive or negative.",
        body="Review: {sentence}\nSentiment (positive or negative):",
        verbalizer={"negative": "negative", "positive": "positive"},
    ),
    "rte": _RTE,
    "axb": replace(_RTE, task="axb"),
    "axg": replace(_RTE, task="axg"),
    "cb": DesignTemplate(
        task="cb",
        parse=r"^cb hypothesis: (?P<hypothesis>.*?) premise: (?P<premise>.*?)" + _CUE,
        instruction=("Read the passage and decide whether the statement after it is true, false, "
                     "or neither (the passage does not say)."),
        body="{premise}\nQuestion: {hypothesis} True, False, or Neither?\nAnswer:",
        verbalizer={"entailment": "True", "contradiction": "False", "neutral": "Neither"},
    ),
    "copa": DesignTemplate(
        task="copa",
        parse=r"^copa premise: (?P<premise>.*) (?P<connective>because|so)" + _CUE,
        instruction="Complete each sentence with its more plausible cause or effect.",
        body="{premise} {connective}",
        verbalizer=None,  # the two choices, scored as the continuation
    ),
    "wic": DesignTemplate(
        task="wic",
        parse=r"^wic sentence1: (?P<sentence1>.*?) sentence2: (?P<sentence2>.*) word: (?P<word>.*?)" + _CUE,
        instruction="Decide whether a word has the same meaning in two sentences. Answer yes or no.",
        body=('Sentence 1: {sentence1}\nSentence 2: {sentence2}\n'
              'Question: Is the word "{word}" used with the same meaning in both sentences?\nAnswer:'),
        verbalizer=YES_NO,
    ),
    "mrpc": DesignTemplate(
        task="mrpc",
        parse=r"^(?:\w+ )?sentence1: (?P<sentence1>.*?) sentence2: (?P<sentence2>.*?)" + _CUE,
        instruction="Decide whether two sentences are paraphrases of each other. Answer yes or no.",
        body="Sentence 1: {sentence1}\nSentence 2: {sentence2}\nQuestion: Do both sentences mean the same thing?\nAnswer:",
        verbalizer={"not_equivalent": "no", "equivalent": "yes"},
    ),
    "qqp": DesignTemplate(
        task="qqp",
        parse=r"^(?:\w+ )?sentence1: (?P<sentence1>.*?) sentence2: (?P<sentence2>.*?)" + _CUE,
        instruction="Decide whether two questions ask the same thing. Answer yes or no.",
        body="Question 1: {sentence1}\nQuestion 2: {sentence2}\nQuestion: Do these two questions ask the same thing?\nAnswer:",
        verbalizer={"not_equivalent": "no", "equivalent": "yes"},
    ),
    "boolq": DesignTemplate(
        task="boolq",
        parse=r"^boolq passage: (?P<passage>.*) question: (?P<question>.*?)" + _CUE,
        instruction="Read the passage and answer the question with yes or no.",
        body="{passage}\nQuestion: {question}\nAnswer:",
        verbalizer=YES_NO,
        prepare=_question_mark,
    ),
    "wsc": DesignTemplate(
        task="wsc",
        parse=r"^wsc text: (?P<text>.*?)" + _CUE,
        instruction="Decide whether the pronoun in the passage refers to the given noun phrase. Answer yes or no.",
        body='{text}\nQuestion: In the passage above, does "{pronoun}" refer to "{noun}"?\nAnswer:',
        verbalizer=YES_NO,
        prepare=_wsc_spans,
    ),
    "multirc": DesignTemplate(
        task="multirc",
        parse=r"^multirc paragraph: (?P<paragraph>.*) question: (?P<question>.*?) answer: (?P<answer>.*?)" + _CUE,
        instruction="Read the paragraph and decide whether the proposed answer to the question is correct. Answer yes or no.",
        body='{paragraph}\nQuestion: {question}\nIs "{answer}" a correct answer?\nAnswer:',
        verbalizer=YES_NO,
    ),
    "record": DesignTemplate(
        task="record",
        parse=r"^record passage: (?P<passage>.*) query: (?P<query>.*?) entities: (?P<entities>.*?)" + _CUE,
        instruction="Read the passage and name the entity that @placeholder stands for in the query.",
        body="{passage}\nQuery: {query}\nQuestion: Which entity is @placeholder?\nAnswer:",
        verbalizer=None,  # the candidate entities
    ),
}


def template_for(task: Task | str) -> DesignTemplate:
    name = task if isinstance(task, str) else task.name
    if name not in TEMPLATES:
        raise SoftPromptError(
            f"no hand-written prompt for task {name!r}; prompt design covers {', '.join(sorted(TEMPLATES))}"
        )
    return TEMPLATES[name]


def sample_demonstrations(train_examples: Sequence[Example], k: int, seed: int = 0) -> list[Example]:
    """k labelled examples drawn without replacement, seeded."""
    pool = [ex for ex in train_examples if ex.target]
    if k > len(pool):
        raise SoftPromptError(f"{k}-shot needs {k} labelled training examples; the split has {len(pool)}")
    return random.Random(seed).sample(pool, k)


def design_input(template: DesignTemplate, example: Example, demonstrations: Sequence[Example] = (),
                 class_words: Sequence[str] | None = None) -> str:
    """The full natural-language input for one example (instruction, demos, the example)."""
    parts = [template.instruction] if template.instruction else []
    parts += [f"{template.fill(d)} {template.answer(d, class_words)}" for d in demonstrations]
    parts.append(template.fill(example))
    return "\n\n".join(parts)


def design_examples(
    template: DesignTemplate, examples: Sequence[Example], demonstrations: Sequence[Example] = (),
    class_words: Sequence[str] | None = None,
) -> list[Example]:
    """The task's examples rewritten with the hand-written prompt and verbalized options."""
    out = []
    for ex in examples:
        options = template.options(ex, class_words)
        target = template.answer(ex, class_words) if ex.target else ""
        out.append(Example(design_input(template, ex, demonstrations, class_words), target, options, ex.answers,
                           ex.group, ex.meta))
    return out


def t5_class_words(task: Task) -> tuple[str, ...] | None:
    """T5's label words in class order, when the task renders another format's words."""
    if not task.formats or task.label_words is None or task.format == "t5":
        return None
    return task.formats["t5"].label_words


def evaluate_prompt_design(
    lm: PromptedLM,
    task: Task,
    examples: Sequence[Example],
    shots: int = 0,
    train_examples: Sequence[Example] | None = None,
    seed: int = 0,
    batch_size: int = 16,
    template: DesignTemplate | None = None,
    max_input_tokens: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvalResult:
    """Zero-shot (shots=0) or k-shot hand-written prompt, scored by rank classification
    with no soft prompt and the task's metric. `extra` records the template and demos;
    `progress` is called with the number of examples each batch scored."""
    template = template or template_for(task)
    demos: list[Example] = []
    if shots:
        if train_examples is None:
            raise SoftPromptError(f"{shots}-shot prompt design needs training examples to draw demonstrations from")
        demos = sample_demonstrations(train_examples, shots, seed)
    examples = list(examples)
    designed = design_examples(template, examples, demos, t5_class_words(task))
    start = time.perf_counter()
    _, scores = predict(lm, designed, None, batch_size, progress=progress, max_input_tokens=max_input_tokens)
    if scores is None:
        raise SoftPromptError(f"prompt design needs a classification task; {task.name} generates text")
    predictions = [ex.choices[best_option(s)] for ex, s in zip(examples, scores)]
    metrics = task.compute_metrics(predictions, examples)
    extra = {
        "template": {"instruction": template.instruction, "body": template.body,
                     "verbalizer": dict(template.verbalizer) if template.verbalizer else None},
        "shots": shots, "seed": seed,
        "demonstrations": [d.meta.get("line", i) for i, d in enumerate(demos)],
        "example_input": designed[0].input if designed else None,
    }
    return EvalResult(metrics, predictions, scores, time.perf_counter() - start, extra)


def describe_templates() -> str:
    """Every template as Markdown (the documentation of the hand-written prompts)."""
    lines = ["| task | instruction | body | answers (label word -> answer) |", "|---|---|---|---|"]
    for name, t in sorted(TEMPLATES.items()):
        body = t.body.replace("\n", "\\n").replace("|", "\\|")
        answers = ", ".join(f"{k} -> {v}" for k, v in t.verbalizer.items()) if t.verbalizer else "the example's own options"
        lines.append(f"| {name} | {t.instruction} | `{body}` | {answers} |")
    return "\n".join(lines)

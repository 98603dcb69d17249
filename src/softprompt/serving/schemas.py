"""Request and response bodies of the prompt server (they make its OpenAPI schema)."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _encodable(text: str) -> str:
    # JSON can carry lone surrogates ("\ud800") that no tokenizer or UTF-8 response can hold.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogate code points)") from None
    return text


Text = Annotated[str, AfterValidator(_encodable)]

PROMPT_FIELD = Field(
    ..., min_length=1, max_length=200,
    description="Name of a served prompt (its file name without .safetensors); GET /v1/prompts lists them.",
    examples=["sst2"],
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------- classify
class ClassifyRequest(_Body):
    """Rank classification: every label is scored as the continuation of every input."""

    prompt: Text = PROMPT_FIELD
    raw: bool = Field(False, description="Give the inputs to the model as they are. By default an input is put in "
                      "the prompt's task format where that format takes one text (an SST-2 review).")
    inputs: list[Text] = Field(
        ..., min_length=1,
        description="Input texts, formatted as the prompt was trained on (one row each).",
        examples=[["sst2 sentence : a great movie", "sst2 sentence : a dull plot"]],
    )
    labels: list[Text] | None = Field(
        None, min_length=1,
        description="Candidate labels (verbalizers). Defaults to the prompt's label_words metadata.",
        examples=[["positive", "negative"]],
    )

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"prompt": "sst2", "inputs": ["sst2 sentence : a great movie"], "labels": ["positive", "negative"]},
    ]})


class Classification(BaseModel):
    label: str = Field(..., description="The label with the highest log-likelihood.", examples=["positive"])
    scores: dict[str, float] = Field(
        ..., description="Log-likelihood of each label given the input (natural log, summed over its tokens).",
        examples=[{"positive": -0.41, "negative": -2.37}],
    )
    probabilities: dict[str, float] = Field(
        ..., description="Softmax of the scores over the given labels (sums to 1).",
        examples=[{"positive": 0.876, "negative": 0.124}],
    )


class ClassifyResponse(BaseModel):
    prompt: str = Field(..., description="The prompt used.", examples=["sst2"])
    labels: list[str] = Field(..., description="The labels scored, in order.", examples=[["positive", "negative"]])
    results: list[Classification] = Field(..., description="One result per input, in order.")


# ----------------------------------------------------------------------- generate
class GenerateRequest(_Body):
    """Greedy generation with the prompt prepended (batched decoding with a KV cache)."""

    prompt: Text = PROMPT_FIELD
    raw: bool = Field(False, description="Give the inputs to the model as they are. By default an input is put in "
                      "the prompt's task format where that format takes one text (an SST-2 review).")
    inputs: list[Text] = Field(..., min_length=1, description="Input texts, one row each.",
                              examples=[["question : what is the plot ?"]])
    max_new_tokens: int = Field(32, ge=1, description="Most tokens to generate per input (stops early at EOS).",
                                examples=[32])

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"prompt": "squad", "inputs": ["question : who wrote it ? context : ..."], "max_new_tokens": 16},
    ]})


class Generation(BaseModel):
    text: str = Field(..., description="The generated continuation (special tokens removed, stripped).",
                      examples=["the actors"])


class GenerateResponse(BaseModel):
    prompt: str = Field(..., examples=["squad"])
    results: list[Generation] = Field(..., description="One generation per input, in order.")


# ----------------------------------------------------------------------- score
class ScoreRequest(_Body):
    """Log-likelihood of arbitrary target strings as continuations of one input."""

    prompt: Text = PROMPT_FIELD
    raw: bool = Field(False, description="Give the inputs to the model as they are. By default an input is put in "
                      "the prompt's task format where that format takes one text (an SST-2 review).")
    input: Text = Field(..., description="The input text.", examples=["sst2 sentence : a great movie"])
    targets: list[Text] = Field(..., min_length=1, description="Target strings to score.",
                               examples=[["positive", "very positive"]])


class TargetScore(BaseModel):
    target: str = Field(..., examples=["positive"])
    log_likelihood: float = Field(..., description="Summed log-probability of the target's tokens.",
                                  examples=[-0.41])


class ScoreResponse(BaseModel):
    prompt: str = Field(..., examples=["sst2"])
    results: list[TargetScore] = Field(..., description="One score per target, in order.")


# ----------------------------------------------------------------------- prompts
class PromptInfo(BaseModel):
    """A served prompt's metadata (never its weights)."""

    name: str = Field(..., examples=["sst2"])
    task: str | None = Field(None, description="The task it was trained for.", examples=["sst2"])
    label_words: list[str] | None = Field(None, description="Default labels for /v1/classify.",
                                          examples=[["negative", "positive"]])
    model_id: str = Field(..., description="The model it was trained on.", examples=["smollm2"])
    embedding_fingerprint: str = Field(..., description="Hash of that model's input embeddings.",
                                       examples=["3f2a9c0d1b7e4a55"])
    hidden_size: int = Field(..., examples=[576])
    prompt_length: int = Field(..., description="Number of soft tokens.", examples=[20])
    init: str = Field(..., description="How the prompt was initialised before training.", examples=["class-label"])
    train_settings: dict[str, Any] = Field(default_factory=dict, description="Training settings recorded in the file.")
    best_dev_metric: dict[str, Any] | None = Field(None, description="Best development-set metric recorded.")
    format_version: str = Field(..., examples=["1"])
    size_bytes: int = Field(..., description="Size of the prompt file.", examples=[46384])
    sha256: str = Field(..., description="SHA-256 of the prompt file's bytes.")
    updated_at: float = Field(..., description="When the file was last written (Unix seconds).")


class PromptList(BaseModel):
    model: str = Field(..., description="The frozen model served.", examples=["smollm2"])
    prompts: list[PromptInfo]
    unavailable: dict[str, str] = Field(
        default_factory=dict,
        description="Prompt files in the folder that are not served, with the reason (malformed, another model).",
    )


class Health(BaseModel):
    status: str = Field(..., examples=["ok"])
    model: str = Field(..., examples=["smollm2"])
    device: str = Field(..., examples=["cpu"])
    prompts: int = Field(..., description="Prompts served.")
    queue_depth: int = Field(..., description="Rows waiting for a batch.")
    batching: str = Field(..., description="mixed or per-task.", examples=["mixed"])
    max_batch_size: int
    max_wait_ms: float
    replica: str | None = Field(None, description="Which replica answered (Ray Serve); null for one process.")


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(..., description="Where: 'body' then the field path.", examples=[["body", "inputs"]])
    msg: str = Field(..., examples=["Input should be a valid list"])
    type: str = Field(..., examples=["list_type"])


class ErrorResponse(BaseModel):
    detail: str = Field(..., description="What went wrong, in one readable message naming the field.",
                        examples=["unknown prompt 'sst3'; GET /v1/prompts lists the available ones"])
    errors: list[ValidationIssue] | None = Field(
        None, description="422 for a malformed body: each validation problem (the input is never echoed).")

"""Server settings: batching, limits and tokens (the `softprompt serve` options)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BatchingMode = Literal["mixed", "per-task"]


@dataclass
class ServerSettings:
    """Everything `create_app` needs besides the model and the prompt folder.

    max_batch_size:         rows (inputs) per forward pass.
    max_wait_ms:            how long the oldest queued row waits for others to join its batch.
    batching:               "mixed" batches rows of any prompts together (one forward pass with
                            per-row prompts); "per-task" batches one prompt at a time (for
                            comparisons; the way a one-adapter-per-batch stack works).
    admin_token:            Bearer token for PUT/DELETE /v1/prompts/{name}; None disables them.
    api_token:              Bearer token for inference and listing; None leaves them open.
    max_input_chars:        longest input (or label / target) string, in characters (413 above).
    max_inputs_per_request: most inputs in one classify/generate request (413 above).
    max_labels:             most labels (classify) or targets (score) in one request (413 above).
    max_new_tokens:         largest max_new_tokens a generate request may ask for (413 above).
    max_upload_bytes:       largest prompt file a PUT may upload (413 above).
    max_request_bytes:      largest JSON request body (413 above).
    max_queue_rows:         rows waiting at most; further requests get 503 until it drains.
    request_timeout_s:      a request not answered by then gets 504 (its rows are dropped).
    """

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    batching: BatchingMode = "mixed"
    admin_token: str | None = None
    api_token: str | None = None
    max_input_chars: int = 4096
    max_inputs_per_request: int = 64
    max_labels: int = 64
    max_new_tokens: int = 256
    max_upload_bytes: int = 16 * 1024 * 1024
    max_request_bytes: int = 4 * 1024 * 1024
    max_queue_rows: int = 4096
    request_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.batching not in ("mixed", "per-task"):
            raise ValueError(f"batching must be 'mixed' or 'per-task', got {self.batching!r}")
        for name in ("max_batch_size", "max_input_chars", "max_inputs_per_request", "max_labels",
                     "max_new_tokens", "max_upload_bytes", "max_request_bytes", "max_queue_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be > 0, got {self.request_timeout_s}")
        # An empty token would accept an empty Bearer header: treat it as "not configured".
        self.admin_token = self.admin_token or None
        self.api_token = self.api_token or None

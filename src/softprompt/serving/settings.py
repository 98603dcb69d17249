"""Server settings: batching, limits and tokens (the `softprompt serve` options)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from softprompt.core.config import ConfigError

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
    store_poll_s:           how often the prompt store's listing is polled for changes made by
                            other servers / replicas (0: never; a miss still checks the store).
    require_if_match:       uploads and deletes must carry If-Match (or If-None-Match: * to
                            create); without one they get 428. Off: a write without a
                            precondition replaces unconditionally (last writer wins).
    replica_id:             sent as the X-Softprompt-Replica header on every response (Ray Serve
                            sets it per replica; None: no header).

    Invalid values raise ConfigError naming the field.
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
    store_poll_s: float = 2.0
    require_if_match: bool = False
    replica_id: str | None = None

    def __post_init__(self) -> None:
        if self.batching not in ("mixed", "per-task"):
            raise ConfigError(f"batching: must be 'mixed' or 'per-task', got {self.batching!r}")
        for name in ("max_batch_size", "max_input_chars", "max_inputs_per_request", "max_labels",
                     "max_new_tokens", "max_upload_bytes", "max_request_bytes", "max_queue_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be an integer of at least 1, got {value!r}")
        for name, low in (("max_wait_ms", 0.0), ("request_timeout_s", None), ("store_poll_s", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise ConfigError(f"{name}: must be a number, got {value!r}")
            if (low is None and value <= 0) or (low is not None and value < low):
                raise ConfigError(f"{name}: must be {'> 0' if low is None else '>= 0'}, got {value!r}")
        # An empty token would accept an empty Bearer header: treat it as "not configured".
        self.admin_token = self.admin_token or None
        self.api_token = self.api_token or None

"""Errors the server turns into HTTP statuses (the handler in app.py maps `status`)."""
from __future__ import annotations


class ServingError(Exception):
    """An error with the HTTP status it answers with and a message for the client.

    retry_after: seconds for a Retry-After header (503: the client may retry then).
    """

    status = 500
    retry_after: float | None = None

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status
        if retry_after is not None:
            self.retry_after = retry_after

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class PromptNotFound(ServingError):
    status = 404


class PromptRejected(ServingError):
    """An uploaded prompt file is malformed (422) or for another model (409)."""

    status = 422


class TooLarge(ServingError):
    status = 413


class QueueFull(ServingError):
    status = 503
    retry_after = 1.0


class ShuttingDown(ServingError):
    status = 503
    retry_after = 1.0


class InferenceFailed(ServingError):
    """The model raised while running a batch: only that batch's requests get it."""

    status = 500


class RequestTimedOut(ServingError):
    status = 504


class PreconditionFailed(ServingError):
    """If-Match / If-None-Match did not hold: someone else changed the prompt first."""

    status = 412


class PreconditionRequired(ServingError):
    """The server requires If-Match (or If-None-Match: *) on writes (--require-if-match)."""

    status = 428

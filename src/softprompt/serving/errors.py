"""Errors the server turns into HTTP statuses (the handler in app.py maps `status`)."""
from __future__ import annotations


class ServingError(Exception):
    """An error with the HTTP status it answers with and a message for the client."""

    status = 500

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status

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


class ShuttingDown(ServingError):
    status = 503


class InferenceFailed(ServingError):
    """The model raised while running a batch: only that batch's requests get it."""

    status = 500


class RequestTimedOut(ServingError):
    status = 504

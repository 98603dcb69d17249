"""Errors a user can act on. The CLI prints their message in one line, no traceback."""


class SoftPromptError(Exception):
    """Base class: a user-facing error whose message says what to fix."""


class DataError(SoftPromptError, ValueError):
    """A data file is missing or malformed; the message names file, line and field."""


class ModelLoadError(SoftPromptError):
    """A model name, folder or file could not be loaded."""


class PromptFileError(SoftPromptError):
    """A prompt file is missing, malformed, or was trained for another model."""


class ModelMismatchError(PromptFileError):
    """A prompt was trained on one model and is being loaded onto another."""


class MismatchedArgumentsError(SoftPromptError, ValueError):
    """Arguments that must agree do not (e.g. one value per row, but a different count)."""

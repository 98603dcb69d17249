"""Serving many soft prompts on one frozen model: HTTP server, batching scheduler, client.

    from softprompt.serving import create_app, ServerSettings, SoftPromptClient

Names are imported lazily so that `import softprompt.serving` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_app": "softprompt.serving.app",
    "ServerSettings": "softprompt.serving.settings",
    "BatchScheduler": "softprompt.serving.scheduler",
    "Row": "softprompt.serving.scheduler",
    "PromptRegistry": "softprompt.serving.registry",
    "Metrics": "softprompt.serving.metrics",
    "SoftPromptClient": "softprompt.serving.client",
    "ClientError": "softprompt.serving.client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'softprompt.serving' has no attribute {name!r}")

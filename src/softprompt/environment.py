"""What a measurement ran on, recorded beside its figures (result.json, benchmark tables)."""
from __future__ import annotations

import os
import platform
from datetime import datetime, timezone

import torch


def machine_info() -> dict:
    """Platform, CPU count, torch version and threads, and the GPU when one is used."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

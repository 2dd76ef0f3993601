"""Schedulers: one module per backend, chosen by name without importing the others."""

from __future__ import annotations

import importlib

from remoted.schedulers.base import Scheduler

_MODULES = {"local": "remoted.schedulers.local", "slurm": "remoted.schedulers.slurm"}


def load_scheduler(name: str, **options: object) -> Scheduler:
    try:
        module = importlib.import_module(_MODULES[name])
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(_MODULES)}") from None
    return module.create(**options)  # type: ignore[no-any-return]

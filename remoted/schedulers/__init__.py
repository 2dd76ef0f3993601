"""Schedulers: one module per backend, chosen by name without importing the others."""

from __future__ import annotations

import importlib

from ailabber.daemonkit.remoted_settings import RemotedSettings
from remoted.schedulers.base import Scheduler

_MODULES = {"local": "remoted.schedulers.local", "slurm": "remoted.schedulers.slurm"}


def load_scheduler(settings: RemotedSettings) -> Scheduler:
    """The backend ``settings.scheduler`` names, made from the typed settings (each
    backend's ``create`` takes what it needs of them).  ValueError when it cannot work."""
    try:
        module = importlib.import_module(_MODULES[settings.scheduler])
    except KeyError:
        raise ValueError(f"unknown scheduler {settings.scheduler!r}; known: {', '.join(_MODULES)}") from None
    scheduler: Scheduler = module.create(settings)
    return scheduler

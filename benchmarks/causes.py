"""Likely causes of missed targets, found by profiling; shown in docs/benchmarks.md only
for figures that miss their target in the run that writes it."""

from __future__ import annotations

CAUSES: dict[str, str] = {}

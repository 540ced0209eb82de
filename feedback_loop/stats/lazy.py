"""Modules imported on first use.

SciPy's ``stats`` and ``special`` take about a second to import on a small machine (and
scikit-learn imports them too); a process that never runs a test or fits a model (a CLI
command, a server answering ingest and reads) should not pay for them at start-up.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """Stands for the module ``name``; the first attribute read imports it, and its names are
    then copied here so later reads are plain attribute reads."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_target"] = name

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__dict__["_lazy_target"])
        self.__dict__.update(module.__dict__)
        return getattr(module, attr)


def lazy(name: str) -> Any:
    """The module ``name``, imported when first used."""
    return LazyModule(name)

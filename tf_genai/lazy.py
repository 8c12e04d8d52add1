"""Package attributes imported on first use (PEP 562), so importing a package stays cheap.

``tf_genai``, ``tf_genai.data`` and ``tf_genai.export`` export names whose modules import
TensorFlow (about 5-10 s on 2 cores); the command line checks its arguments, paths and model
files before that, with the modules that need none. Depends on nothing of ours.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def exports(package: str, modules: dict[str, tuple[str, ...]]
            ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: its sub-modules named in ``modules`` and the
    names each defines (``{"sources": ("load", ...)}``), imported when first asked for."""
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in modules:
            return importlib.import_module(f"{package}.{name}")
        if name in home:
            return getattr(importlib.import_module(f"{package}.{home[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(modules) | set(home))

    return __getattr__, __dir__

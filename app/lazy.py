"""Names of a package loaded on first use, for packages whose heavy parts only some
processes need."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def by_module(modules: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """``{name: module}`` from ``{module: names}``."""
    return {name: module for module, names in modules.items() for name in names}


def exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for `package`: each of `names` (name -> the module
    that defines it) is imported from its module the first time it is asked for, and kept
    on the package from then on."""

    def getattr_(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return getattr_

"""Old public names kept for a while: each still works and warns (``DeprecationWarning``), naming its successor."""

from __future__ import annotations

import warnings
from typing import Any, Callable


def renamed(namespace: dict[str, Any], names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves each old name in ``names`` as the object now called ``names[old]``."""
    module = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name in names:
            warnings.warn(f"{module}.{name} is deprecated; use {module}.{names[name]}", DeprecationWarning,
                          stacklevel=2)
            return namespace[names[name]]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__

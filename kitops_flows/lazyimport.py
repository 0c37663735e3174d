"""Import a module when it is first used, so a command pays only for what it runs.

    yaml12 = LazyModule("kitops_flows.yaml12")   # nothing imported yet
    yaml12.compose(text)                          # imported here (once; thread-safe: the import lock)

For modules a whole feature needs but the fast paths do not (``kitops-flows list`` reads JSON
configs and never YAML). Type annotations need no import (``from __future__ import annotations``).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands in for module ``name``; the first attribute access imports it and forwards from then on."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"LazyModule({self._name!r}, loaded={self._module is not None})"

"""The environment benches run kitops-flows children in: like an installed package, bytecode cached.

``pip install`` compiles every module to bytecode, and a normal interpreter caches what it imports. A
machine with ``PYTHONDONTWRITEBYTECODE`` set (this repository's sandbox has it) would make every child
compile kitops-flows from source again, ~20 ms that no installed copy pays; the cache goes to
``<work>/pycache`` so the source tree stays untouched. Call ``warm`` once before timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def child_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def warm(work: Path, *modules: str) -> None:
    """Import ``modules`` once in a child, so their bytecode is cached before any measurement."""
    code = "import " + ", ".join(modules)
    subprocess.run([sys.executable, "-c", code], check=True, env=child_env(work))

"""``kitops-flows cache info|clear``: kit's cache directory (``$KITOPS_HOME/cache``: ``pack/`` and ``import/``
temporary files) — how big it is, and emptying it. The local store (``storage/``) is never touched.

    kitops-flows cache info
    kitops-flows cache clear
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import KitopsError

if TYPE_CHECKING:
    from .api import KitOpsClient


def walk_size(path: Path) -> int:
    """Go's filepath.Walk sum of sizes: every file and directory entry (its own size too), symlinks not followed."""
    total = path.lstat().st_size
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except FileNotFoundError:
                    continue  # removed while we walked
    return total


def cache_report(cache_dir: Path) -> str:
    """What ``kit cache info`` prints."""
    from .kitoutput import format_bytes

    entries = sorted(os.listdir(cache_dir)) if cache_dir.is_dir() else []
    if not entries:
        return "Cache is currently empty\n"
    rows = [(f"  ./{name}", format_bytes(walk_size(cache_dir / name))) for name in entries]
    width = max(len(r[0]) for r in rows) + 4  # tabwriter padding 4
    lines = [f"Total size of cache directory: {format_bytes(walk_size(cache_dir))}", "Cache contents:"]
    lines += [f"{name.ljust(width)}{size}" for name, size in rows]
    return "\n".join(lines) + "\n"


def clear_cache(cache_dir: Path) -> None:
    """Remove every entry of the cache directory (the directory itself stays), silently, as kit does."""
    for name in os.listdir(cache_dir) if cache_dir.is_dir() else []:
        path = cache_dir / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as e:
            raise KitopsError(f"failed to clear cache entry {path}: {e.strerror or e}") from None


def cmd_cache(args: argparse.Namespace, kit: KitOpsClient) -> int:
    cache_dir = kit.store.home / "cache"
    if args.cache_command == "info":
        print(cache_report(cache_dir), end="")
    else:
        clear_cache(cache_dir)
    return 0


def register(sub: argparse._SubParsersAction, network_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    text = "Show or clear the cache directory ($KITOPS_HOME/cache); the local store is not touched"
    group = sub.add_parser("cache", help=text, description=text)
    group.set_defaults(func=cmd_cache)
    commands = group.add_subparsers(dest="cache_command", metavar="SUBCOMMAND")
    commands.required = True
    commands.add_parser("info", help="Total size of the cache directory and of each entry")
    commands.add_parser("clear", help="Remove everything in the cache directory")

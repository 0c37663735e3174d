"""``kitops-flows discover REF`` (the referrers tree: provenance, signatures, attestations, downstream edges) and
``kitops-flows provenance REF`` (the newest verified provenance statement), without curl or skopeo.

    kitops-flows discover reg.example.com/team/churn:v3
    kitops-flows discover reg.example.com/team/churn:v3 --format json
    kitops-flows provenance reg.example.com/team/churn:v3
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .api import KitOpsClient

MAX_DEPTH = 8  # levels of referrers discover follows by default (discover.MAX_DEPTH; kept here so --help stays light)


def cmd_discover(args: argparse.Namespace, kit: KitOpsClient) -> int:
    from .discover import discover, render_json, render_tree

    tree = discover(kit, args.reference, depth=args.depth, remote=not args.local)
    sys.stdout.write(render_json(tree) if args.format == "json" else render_tree(tree))
    return 0


def cmd_provenance(args: argparse.Namespace, kit: KitOpsClient) -> int:
    from .lineage import read_provenance

    statement = read_provenance(kit, args.reference, remote=not args.local)
    print(json.dumps(statement, indent=2, ensure_ascii=False))
    return 0


def register(sub: argparse._SubParsersAction, network_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    text = "Show the artifacts that refer to a ModelKit: provenance, signatures, attestations, downstream edges"
    p = sub.add_parser("discover", help=text, description=text, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  kitops-flows discover reg.example.com/team/churn:v3\n"
                              "  kitops-flows discover reg.example.com/team/churn:v3 --format json")
    p.add_argument("reference")
    p.add_argument("--format", choices=("tree", "json"), default="tree")
    p.add_argument("--depth", type=int, default=MAX_DEPTH, help=f"levels of referrers to follow (default {MAX_DEPTH})")
    p.add_argument("--local", action="store_true", help="only the local store's records; no registry requests")
    network_flags(p)
    p.set_defaults(func=cmd_discover)

    text = "Print a ModelKit's newest verified provenance statement (in-toto, SLSA provenance v1) as JSON"
    p = sub.add_parser("provenance", help=text, description=text,
                       epilog="example: kitops-flows provenance reg.example.com/team/churn:v3")
    p.add_argument("reference")
    p.add_argument("--local", action="store_true", help="only the local store's records; no registry requests")
    network_flags(p)
    p.set_defaults(func=cmd_provenance)

"""``kitops-flows diff A B``: kit's ``diff`` command (see ``kitops_flows.diff``).

    kitops-flows diff team/churn:v1 team/churn:v2
    kitops-flows diff local://reg.example.com/team/churn:v1 remote://reg.example.com/team/churn:v1
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .errors import KitopsError, ReferenceFormatError

if TYPE_CHECKING:
    from .api import KitOpsClient


def cmd_diff(args: argparse.Namespace, kit: KitOpsClient) -> int:
    from .diff import fetch_pair, render_diff, strip_prefix
    from .reference import parse_reference

    for n, arg in enumerate((args.modelkit1, args.modelkit2), start=1):
        try:
            parse_reference(strip_prefix(arg))
        except ReferenceFormatError as e:
            raise KitopsError(f"Invalid arguments: failed to parse reference for ref{n}: {e}") from None
    a, b = fetch_pair(kit, args.modelkit1, args.modelkit2)
    sys.stdout.write(render_diff(a, b))
    return 0


def register(sub: argparse._SubParsersAction, network_flags: object) -> None:
    """Add ``diff`` to the CLI's subcommands (``network_flags`` adds --plain-http etc. to a parser)."""
    text = "Compare two ModelKits (layers, config, annotations), local or remote"
    p = sub.add_parser(
        "diff", help=text, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=text + ".\n\nPrefix a reference with 'local://' to read only the local store, or 'remote://' to "
        "read only the registry;\nwithout a prefix the local store is tried first, then the registry.",
        epilog="examples:\n  kitops-flows diff team/churn:v1 team/churn:v2\n"
               "  kitops-flows diff local://reg.example.com/team/churn:v1 remote://reg.example.com/team/churn:v1",
    )
    p.add_argument("modelkit1", metavar="MODELKIT1")
    p.add_argument("modelkit2", metavar="MODELKIT2")
    network_flags(p)  # type: ignore[operator]
    p.set_defaults(func=cmd_diff)

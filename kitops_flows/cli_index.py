"""``kitops-flows index …``: kit's ``index`` command group (see ``kitops_flows.indexes``), and ``-l/--label``
on ``pull`` and ``unpack`` to select one ModelKit of an index.

    kitops-flows index create team/llm:all
    kitops-flows index add team/llm:all team/llm:q4_0 -l quantization=q4_0 -l 'gpuArchs:=["sm_80"]'
    kitops-flows index info team/llm:all --format json
    kitops-flows unpack reg.example.com/team/llm:all -l quantization=q4_0 -d ./model
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import KitopsError

if TYPE_CHECKING:
    from .api import KitOpsClient
    from .indexes import IndexInfo, ModelKitIndexes

_FAILURE = {"create": "Failed to create index", "add": "Failed to add ModelKit to index",
            "remove": "Failed to remove ModelKit from index", "delete": "Failed to delete index",
            "list": "Failed to list indexes", "info": "Failed to read index", "inspect": "Failed to inspect index",
            "push": "Failed to push index", "pull": "Failed to pull index"}


def _indexes(kit: KitOpsClient) -> ModelKitIndexes:
    from .indexes import ModelKitIndexes

    return ModelKitIndexes(kit)


def _check_args(args: argparse.Namespace) -> None:
    """kit validates references, labels and annotations before touching storage: ``Invalid arguments: …``."""
    from .indexes import index_reference
    from .modelindex import parse_annotation_edits, parse_label_edits
    from .reference import parse_reference

    try:
        if args.index_command in ("create", "add", "remove", "push", "pull"):
            index_reference(args.index, announce=False)
        elif getattr(args, "index", None):
            parse_reference(args.index)
        if args.index_command == "add":
            ref = parse_reference(args.modelkit)
            if ref.is_local_only and args.remote:
                raise KitopsError(f"can not check remote: {ref.display()} does not contain registry")
            parse_label_edits(args.label or [])
            parse_annotation_edits(args.annotate or [])
        if args.index_command in ("info", "inspect") and args.remote and parse_reference(args.index).is_local_only:
            raise KitopsError(f"can not check remote: {parse_reference(args.index).display()} does not contain registry")
    except KitopsError as e:
        raise KitopsError(f"Invalid arguments: {e}") from None


def cmd_index(args: argparse.Namespace, kit: KitOpsClient) -> int:
    _check_args(args)
    try:
        return _RUN[args.index_command](args, _indexes(kit))
    except KitopsError as e:
        raise KitopsError(f"{_FAILURE[args.index_command]}: {e}") from None


def _create(args: argparse.Namespace, idx: ModelKitIndexes) -> int:
    ref, desc = idx.create(args.index)
    print(f"Created index {ref.display()} (digest {desc.digest})")
    return 0


def _add(args: argparse.Namespace, idx: ModelKitIndexes) -> int:
    from .indexes import index_reference
    from .reference import parse_reference

    desc = idx.add(args.index, args.modelkit, labels=args.label or [], annotations=args.annotate or [],
                   remote=args.remote)
    print(f"Added {parse_reference(args.modelkit).display()} to index "
          f"{index_reference(args.index, announce=False).display()} (digest {desc.digest})")
    return 0


def _remove(args: argparse.Namespace, idx: ModelKitIndexes) -> int:
    from .indexes import index_reference

    shown, desc = idx.remove(args.index, args.modelkit)
    print(f"Removed {shown} from index {index_reference(args.index, announce=False).display()} (digest {desc.digest})")
    return 0


def _delete(args: argparse.Namespace, idx: ModelKitIndexes) -> int:
    for line in idx.delete(args.index, force=args.force, all_untagged=args.all):
        print(line)
    return 0


def _list(args: argparse.Namespace, idx: ModelKitIndexes) -> int:
    rows = idx.list()
    if args.format == "json":
        doc = [{"repo": _repo(s.repo_path), "digest": s.descriptor.digest, "tags": list(s.tags), "modelKits": n}
               for s, n in rows]
        sys.stdout.write(_go_indent_json(doc) + "\n")
        return 0
    table = [("REPOSITORY", "TAG", "MODELKITS", "DIGEST")]
    for stored, count in rows:
        for tag in stored.tags or ("<none>",):
            table.append((_repo(stored.repo_path), tag, "<none>" if count is None else str(count),
                          stored.descriptor.digest))
    sys.stdout.write(tabwrite(table))
    return 0


def _info(args: argparse.Namespace, idx: ModelKitIndexes) -> int:
    info = idx.info(args.index, remote=args.remote)
    if args.format == "json":
        sys.stdout.write(_go_indent_json(info.to_dict()) + "\n")
    else:
        sys.stdout.write(render_info(info))
    return 0


def render_info(info: IndexInfo) -> str:
    """kit index info's table: one row per entry, extra rows for further labels/annotations, lines right-trimmed."""
    from .kitoutput import format_bytes
    from .modelindex import entry_reference

    lines = [f"Index {info.ref.display()} ({info.descriptor.digest})"]
    entries = info.index.entries
    if not entries:
        return "\n".join([*lines, "Index contains no ModelKits"]) + "\n"
    lines.append("1 ModelKit:" if len(entries) == 1 else f"{len(entries)} ModelKits:")
    table = [("ORIGINAL REFERENCE", "SIZE", "LABELS", "ANNOTATIONS", "DIGEST")]
    for entry, size in zip(entries, info.sizes, strict=True):
        labels = entry.label_pairs()
        annotations = [f"{k}={v}" for k, v in sorted(entry.user_annotations.items())]
        for row in range(max(1, len(labels), len(annotations))):
            first = row == 0
            table.append((
                (entry_reference(entry, info.ref) or "<none>") if first else "",
                ("<none>" if size is None else format_bytes(size)) if first else "",
                _cell(labels, row), _cell(annotations, row), entry.digest if first else "",
            ))
    return "\n".join(lines) + "\n" + tabwrite(table)


def _cell(values: list[str], row: int) -> str:
    return values[row] if row < len(values) else ("<none>" if row == 0 else "")


def tabwrite(rows: list[tuple[str, ...]], padding: int = 3) -> str:
    """Go's tabwriter (minwidth 0, padding 3) over rows whose last cell is not aligned; lines right-trimmed."""
    widths = [max(len(r[i]) for r in rows) + padding for i in range(len(rows[0]) - 1)]
    out = []
    for r in rows:
        out.append(("".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + r[-1]).rstrip(" "))
    return "\n".join(out) + "\n"


def _inspect(args: argparse.Namespace, idx: ModelKitIndexes) -> int:
    from .modelindex import go_indent

    data = idx.inspect(args.index, remote=args.remote)
    sys.stdout.write(go_indent(data.decode("utf-8")) + "\n")
    return 0


def _push(args: argparse.Namespace, idx: ModelKitIndexes) -> int:
    from .indexes import index_reference

    src = index_reference(args.index, announce=False)
    dst = index_reference(args.destination, announce=False) if args.destination else src
    print(f"Pushing index {src.display()} to {dst.display()}" if args.destination else f"Pushing index {dst.display()}")
    _, desc = idx.push(args.index, args.destination)
    print(f"Pushed index {desc.digest}")
    return 0


def _pull(args: argparse.Namespace, idx: ModelKitIndexes) -> int:
    from .indexes import index_reference

    print(f"Pulling index {index_reference(args.index, announce=False).display()}")
    _, desc = idx.pull(args.index)
    print(f"Pulled index {desc.digest}")
    return 0


_RUN: dict[str, Callable[[argparse.Namespace, ModelKitIndexes], int]] = {
    "create": _create, "add": _add, "remove": _remove, "delete": _delete, "list": _list, "info": _info,
    "inspect": _inspect, "push": _push, "pull": _pull,
}


def _repo(repo_path: str) -> str:
    return repo_path.removeprefix("localhost/")


def _go_indent_json(doc: object) -> str:
    """``json.MarshalIndent(doc, "", "  ")``: HTML-safe escapes, non-ASCII kept."""
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def register(sub: argparse._SubParsersAction, network_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``index`` and its subcommands, and ``-l/--label`` to ``pull`` and ``unpack``."""
    text = "Manage ModelKit indexes: several variants of one model, selected by labels"
    group = sub.add_parser("index", help=text, description=text, formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    group.set_defaults(func=cmd_index)
    commands = group.add_subparsers(dest="index_command", metavar="SUBCOMMAND")
    commands.required = True

    def add(name: str, help_text: str, *, remote: str | None = None, network: bool = False) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help_text, description=help_text)
        if remote:
            p.add_argument("-r", "--remote", action="store_true", help=remote)
        if network:
            network_flags(p)
        return p

    p = add("create", "Create an empty ModelKit index in local storage")
    p.add_argument("index", metavar="INDEX")
    p = add("add", "Add a ModelKit to an index, or update its entry's labels and annotations",
            remote="resolve the ModelKit in its remote registry instead of local storage", network=True)
    p.add_argument("index", metavar="INDEX")
    p.add_argument("modelkit", metavar="MODELKIT")
    p.add_argument("-l", "--label", action="append",
                   help="key=value, key:=<json> or key- (remove); repeatable")
    p.add_argument("--annotate", action="append", help="key=value or key- (remove); repeatable")
    p = add("remove", "Remove a ModelKit (by tag or digest) from an index; the ModelKit stays")
    p.add_argument("index", metavar="INDEX")
    p.add_argument("modelkit", metavar="MODELKIT")
    p = add("delete", "Delete (or untag) a local index; never removes ModelKits")
    p.add_argument("index", metavar="INDEX", nargs="?")
    p.add_argument("-f", "--force", action="store_true", help="delete even if other tags point at it")
    p.add_argument("-a", "--all", action="store_true", help="delete every untagged index (with -f: every index)")
    p = add("list", "List local indexes")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p = add("info", "Show the ModelKits in an index with their labels",
            remote="read the index from its registry instead of local storage", network=True)
    p.add_argument("index", metavar="INDEX")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p = add("inspect", "Print an index's JSON", remote="read the index from its registry", network=True)
    p.add_argument("index", metavar="INDEX")
    p = add("push", "Push a local index to a registry (its ModelKits must be there already)", network=True)
    p.add_argument("index", metavar="SOURCE")
    p.add_argument("destination", metavar="DESTINATION", nargs="?")
    p = add("pull", "Download an index (not its ModelKits) into local storage", network=True)
    p.add_argument("index", metavar="INDEX")

    for name in ("pull", "unpack"):
        if name in sub.choices:
            sub.choices[name].add_argument(
                "-l", "--label", action="append", metavar="KEY=VALUE",
                help="the reference is a ModelKit index: take the ModelKit with these labels (repeatable)")

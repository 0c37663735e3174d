"""``kitops-flows``: kit's commands and flags over the kitops-flows API.

Examples::

    kitops-flows pack ./churn -t team/churn:v1
    kitops-flows list --format json
    kitops-flows unpack team/churn:v1 -d /tmp/churn --filter datasets:train
    kitops-flows push team/churn:v1 127.0.0.1:5000/team/churn:v1 --plain-http
    kitops-flows verify

Errors print one line to stderr and exit non-zero; progress and kit-style status lines go to stderr
as plain lines (fit for CI logs), results to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, cli_import, cli_skill
from .cli_sign import register as register_signing
from .errors import KitopsError
from .kitfile import kitfile_arg

if TYPE_CHECKING:  # the API is imported when a command runs: `--help` stays fast
    from .api import KitOpsClient, ListEntry

if TYPE_CHECKING:
    from .registry import RetryPolicy

LOG = logging.getLogger("kitops_flows")

Command = Callable[[argparse.Namespace, "KitOpsClient"], int]


def _client(args: argparse.Namespace) -> KitOpsClient:
    from .api import KitOpsClient
    from .store import LocalStore, default_kitops_home

    home = Path(args.config) if args.config else default_kitops_home()
    return KitOpsClient(
        store=LocalStore(home),
        plain_http=getattr(args, "plain_http", False),
        tls_verify=getattr(args, "tls_verify", "true") != "false",
        concurrency=getattr(args, "concurrency", 4),
        immutable_tags=getattr(args, "immutable", False),
        ca_cert=getattr(args, "tls_cert", None),
        retry=_retry_policy(args),
    )


def _retry_policy(args: argparse.Namespace) -> RetryPolicy | None:
    times, delay = getattr(args, "retry_times", None), getattr(args, "retry_delay", None)
    if times is None and delay is None:
        return None
    from .registry import RetryPolicy

    return RetryPolicy.from_cli(times, delay)


def _duration(text: str) -> float:
    """skopeo-style durations for --retry-delay: ``2s``, ``500ms``, ``1m``, or plain seconds."""
    import re

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use e.g. 2s, 500ms or 1m")
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]


def _retry_times(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid retry count {text!r}: give a number of retries, e.g. 3")
    return int(text)


# -- commands ----------------------------------------------------------------------------------------

def cmd_pack(args: argparse.Namespace, kit: KitOpsClient) -> int:
    desc = kit.pack(
        args.directory, kitfile=None if args.file in (None,) else kitfile_arg(args.file), reference=args.tag,
        compression=args.compression, layer_format=args.layer_format, push=args.push,
        use_model_pack=args.use_model_pack,
    )
    if args.push:  # kit's last line for pack --push; "Model saved: <digest>" is pack's own log line
        LOG.info("Model pushed: %s", desc.digest)
    print(desc.reference if args.tag else desc.digest)
    return 0


def cmd_unpack(args: argparse.Namespace, kit: KitOpsClient) -> int:
    if args.as_skill is not None:
        from .cli_skill import unpack_as_skill

        return unpack_as_skill(args, kit)
    args.dir = "." if args.dir is None else args.dir
    existing = "overwrite" if args.overwrite else "ignore" if args.ignore_existing else "error"
    result = kit.unpack(args.reference, args.dir, filters=args.filter or None, existing=existing,
                        include_remote=args.include_remote, labels=getattr(args, "label", None))
    for path in result.paths:
        print(path)
    return 0


def cmd_push(args: argparse.Namespace, kit: KitOpsClient) -> int:
    desc = kit.push(args.source, args.destination)
    print(desc.pinned)
    return 0


def cmd_pull(args: argparse.Namespace, kit: KitOpsClient) -> int:
    desc = kit.pull(args.reference, labels=getattr(args, "label", None))
    print(desc.pinned)
    return 0


def cmd_list(args: argparse.Namespace, kit: KitOpsClient) -> int:
    rows = kit.list(args.repository)
    if args.filter:
        rows = [r for r in rows if _has_layer_matching(kit, r, args.filter)]
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in rows], indent=2, ensure_ascii=False))
        return 0
    _print_table(rows)
    return 0


def _has_layer_matching(kit: KitOpsClient, row: ListEntry, filters: Sequence[str]) -> bool:
    """kit list -f: a ModelKit is listed when any of its layers matches any filter."""
    from .filters import parse_filters
    from .reference import Reference
    from .unpack import select_layers

    ref = Reference(*row.repo.split("/", 1), row.digest)
    loaded = kit.source.load_local(ref) if ref.is_local_only or kit.store.has_blob(row.digest) \
        else kit.source.load_remote(ref)
    return any(select_layers(loaded.kitfile, loaded.manifest, [f], str(ref)) for f in parse_filters(list(filters)))


def _print_table(rows: Sequence[ListEntry]) -> None:
    from .kitoutput import format_bytes
    from .reference import Reference

    header = ("REPOSITORY", "TAG", "MAINTAINER", "NAME", "SIZE", "DIGEST")
    lines = []
    for r in rows:
        repo = Reference(*r.repo.split("/", 1), "latest").display().rsplit(":", 1)[0]
        for tag in r.tags or ("<none>",):
            lines.append((repo, tag, r.author or "<none>", r.model_name or "<none>", format_bytes(r.size), r.digest))
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    for line in [header, *lines]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def cmd_inspect(args: argparse.Namespace, kit: KitOpsClient) -> int:
    print(json.dumps(kit.inspect(args.reference, remote=args.remote), indent=2, ensure_ascii=False))
    return 0


def cmd_info(args: argparse.Namespace, kit: KitOpsClient) -> int:
    from .errors import NotFoundError

    try:
        kitfile = kit.info(args.reference, remote=args.remote)
    except NotFoundError:
        from .reference import parse_reference

        raise KitopsError(f"Could not find modelkit {parse_reference(args.reference).display()}") from None
    if args.filter:
        from .infofilter import filter_kitfile

        sys.stdout.write(filter_kitfile(kitfile, args.filter))
        return 0
    sys.stdout.write(kitfile.to_yaml())
    return 0


def cmd_tag(args: argparse.Namespace, kit: KitOpsClient) -> int:
    desc = kit.tag(args.source, args.destination)
    print(f"Tagged {args.source} as {args.destination} ({desc.digest})", file=sys.stderr)
    return 0


def cmd_remove(args: argparse.Namespace, kit: KitOpsClient) -> int:
    for removed in kit.remove(args.reference, force=args.force, remote=args.remote):
        print(f"Removed {removed}")
    return 0


def cmd_verify(args: argparse.Namespace, kit: KitOpsClient) -> int:
    report = kit.verify()
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for problem in report.problems:
        print(f"problem: {problem}")
    print(
        f"checked {report.blobs_checked} blobs and {report.manifests_checked} manifests: "
        + ("OK" if report.ok else f"{len(report.problems)} problem(s)"),
        file=sys.stderr,
    )
    return 0 if report.ok else 1


def cmd_gc(args: argparse.Namespace, kit: KitOpsClient) -> int:
    report = kit.store.gc()
    print(f"Removed {report.blobs_removed} unreferenced blob(s) and {report.leftovers_removed} leftover file(s) "
          "of interrupted packs/pulls")
    return 0


def cmd_init(args: argparse.Namespace, kit: KitOpsClient) -> int:
    from .generate import generate_kitfile

    directory = Path(args.path)
    target = directory / "Kitfile"
    if target.exists() and not args.force:
        raise KitopsError(f"{target} already exists; use --force to overwrite it")
    kitfile = generate_kitfile(directory, name=args.name, description=args.desc, author=args.author)
    target.write_text(kitfile.to_yaml())
    print(f"Generated Kitfile: {target}", file=sys.stderr)
    return 0


def cmd_login(args: argparse.Namespace, kit: KitOpsClient) -> int:
    from .registry import login

    username = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password:
        password = args.password
    else:
        import getpass

        password = getpass.getpass("Password: ")
    login(args.registry, username, password, kitops_home=kit.store.home, plain_http=args.plain_http,
          tls_verify=args.tls_verify != "false")
    print(f"Log in successful for {args.registry}", file=sys.stderr)
    return 0


def cmd_logout(args: argparse.Namespace, kit: KitOpsClient) -> int:
    from .registry import logout

    logout(args.registry, kitops_home=kit.store.home)
    print(f"Logged out of {args.registry}", file=sys.stderr)
    return 0


def cmd_lineage(args: argparse.Namespace, kit: KitOpsClient) -> int:
    from .lineage import graph

    g = graph(kit, args.reference, "down" if args.down else "up", args.depth)
    data = g.render(args.format)
    if args.output:
        Path(args.output).write_bytes(data)
        print(f"Wrote {args.format} lineage graph of {len(g.nodes)} node(s) to {args.output}", file=sys.stderr)
    elif args.format in ("png", "svg") and sys.stdout.isatty():
        raise KitopsError(f"refusing to write {args.format} to a terminal: add -o FILE")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def cmd_promote(args: argparse.Namespace, kit: KitOpsClient) -> int:
    from .lineage import promote

    event = promote(kit, args.reference, args.stage, require_signature=args.require_signature)
    moved = f" (was {event.previous})" if event.previous and event.previous != event.digest else ""
    print(f"Promoted {event.repository}@{event.digest} to {event.stage}{moved}", file=sys.stderr)
    print(json.dumps(event.to_dict(), indent=2))
    return 0


def cmd_history(args: argparse.Namespace, kit: KitOpsClient) -> int:
    from .lineage import history

    events = history(kit, args.repository)
    if args.format == "json":
        print(json.dumps([e.to_dict() for e in events], indent=2))
        return 0
    header = ("TIME", "STAGE", "DIGEST", "PREVIOUS", "USER", "SIGNED BY")
    rows = [(e.time, e.stage, e.digest, e.previous or "<none>", e.user or "<none>", e.signed_by or "<unchecked>")
            for e in events]
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    for line in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return 0


def cmd_version(args: argparse.Namespace, kit: KitOpsClient) -> int:
    print(f"kitops-flows {__version__}")
    return 0


# -- parser ------------------------------------------------------------------------------------------

def _network_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plain-http", action="store_true", help="use plain HTTP to talk to the registry")
    p.add_argument("--tls-verify", choices=("true", "false"), default="true",
                   help="verify the registry's TLS certificate (default true)")
    p.add_argument("--concurrency", type=int, default=4, help="blobs transferred in parallel (default 4)")
    p.add_argument("--tls-cert", metavar="FILE", help="PEM file of CA certificates to trust for the registry")
    p.add_argument("--retry-times", type=_retry_times, metavar="N",
                   help="retries of a failed registry request (429/5xx/reset) before giving up (default 4)")
    p.add_argument("--retry-delay", type=_duration, metavar="DURATION",
                   help="fixed pause between retries, e.g. 2s (default: exponential backoff with jitter)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kitops-flows",
        description="Pack, store, push, pull and unpack KitOps ModelKits (kit-compatible).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1].split("Errors print", 1)[0] if __doc__ else None,
    )
    parser.add_argument("--config", help="KitOps home (default $KITOPS_HOME or ~/.local/share/kitops)")
    parser.add_argument("--log-level", choices=("trace", "debug", "info", "warn", "error"), default="info",
                        help="trace is debug here (kit's flag values)")
    parser.add_argument("--progress", choices=("none", "plain", "fancy"), default="plain",
                        help="transfer progress: none hides the lines; plain and fancy both log one line every 10 s "
                             "(no bars: these logs end up in schedulers' log files)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, fn: Command, help_text: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=f"example:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=fn)
        return p

    p = add("pack", cmd_pack, "Pack a directory into a ModelKit in the local store",
            "kitops-flows pack ./churn -t team/churn:v1 --compression none")
    p.add_argument("directory", help="context directory (Kitfile paths are relative to it)")
    p.add_argument("-f", "--file", help="Kitfile to use (default: Kitfile, kitfile or .kitfile in DIR; '-' = stdin)")
    p.add_argument("-t", "--tag", help="reference to tag it with: [registry/]repo[:tag][,tag2...]")
    p.add_argument("--compression", default="none", choices=("none", "gzip", "gzip-fastest", "zstd"))
    p.add_argument("--layer-format", default="tar", choices=("tar", "raw"))
    p.add_argument("--use-model-pack", action="store_true",
                   help="write a CNCF ModelPack artifact (model-spec config and media types) instead of kit's format")
    p.add_argument("--push", action="store_true", help="push to the registry named in -t after packing")
    _network_flags(p)

    p = add("unpack", cmd_unpack, "Extract a ModelKit (or selected layers) into a directory",
            "kitops-flows unpack team/churn:v1 -d ./out --filter model --filter datasets:train")
    p.add_argument("reference")
    p.add_argument("-d", "--dir", help="destination directory (default .; with --as-skill: project dir)")
    p.add_argument("-f", "--filter", action="append",
                   help="<type>[,<type>][:<name-or-path>,...]; types: kitfile, model, datasets, code, prompts, docs, mcpservers")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-o", "--overwrite", action="store_true", help="overwrite existing files")
    g.add_argument("-i", "--ignore-existing", action="store_true", help="keep existing files, skip those entries")
    p.add_argument("--include-remote", action="store_true",
                   help="also download remote (s3://) datasets, verified against their remoteHash")
    cli_skill.add_unpack_flag(p)
    _network_flags(p)

    p = add("push", cmd_push, "Copy a local ModelKit to a registry", "kitops-flows push reg.example.com/team/churn:v1")
    p.add_argument("source")
    p.add_argument("destination", nargs="?")
    p.add_argument("--immutable", action="store_true", help="refuse to move an existing tag to a different digest")
    _network_flags(p)

    p = add("pull", cmd_pull, "Download a ModelKit into the local store", "kitops-flows pull reg.example.com/team/churn:v1")
    p.add_argument("reference")
    _network_flags(p)

    p = add("list", cmd_list, "List ModelKits in the local store (or a remote repository)", "kitops-flows list --format json")
    p.add_argument("repository", nargs="?")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("-f", "--filter", action="append", help="only ModelKits with a layer matching this filter "
                   "(unpack's syntax, e.g. prompts or datasets:train); repeatable, OR-ed")
    _network_flags(p)

    p = add("inspect", cmd_inspect, "Show digest, manifest and Kitfile as JSON", "kitops-flows inspect team/churn:v1")
    p.add_argument("reference")
    p.add_argument("-r", "--remote", action="store_true", help="inspect in the registry, not the local store")
    _network_flags(p)

    p = add("info", cmd_info, "Show the Kitfile of a ModelKit", "kitops-flows info team/churn:v1 -f model.path")
    p.add_argument("reference")
    p.add_argument("-r", "--remote", action="store_true")
    p.add_argument("-f", "--filter", help="one Kitfile node by kit's Go field names, e.g. .model.path or .package "
                   "(printed as YAML)")
    _network_flags(p)

    p = add("tag", cmd_tag, "Tag a local ModelKit", "kitops-flows tag team/churn:v1 team/churn:champion")
    p.add_argument("source")
    p.add_argument("destination")

    p = add("remove", cmd_remove, "Untag or remove a ModelKit", "kitops-flows remove team/churn:v1")
    p.add_argument("reference")
    p.add_argument("-f", "--force", action="store_true", help="remove the manifest even if given by tag")
    p.add_argument("-r", "--remote", action="store_true", help="delete in the registry")
    _network_flags(p)

    register_signing(add, _network_flags, local_verify=cmd_verify)  # generate-key-pair, sign, verify
    add("gc", cmd_gc, "Delete blobs no ModelKit references", "kitops-flows gc")

    p = add("init", cmd_init, "Generate a Kitfile for a directory", "kitops-flows init ./churn --name churn")
    p.add_argument("path")
    p.add_argument("--name")
    p.add_argument("--desc")
    p.add_argument("--author")
    p.add_argument("--force", action="store_true")

    p = add("login", cmd_login, "Log in to a registry (credentials are checked before saving)",
            "echo $PASS | kitops-flows login reg.example.com -u me --password-stdin")
    p.add_argument("registry")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true")
    _network_flags(p)

    p = add("logout", cmd_logout, "Forget a registry's credentials", "kitops-flows logout reg.example.com")
    p.add_argument("registry")

    p = add("lineage", cmd_lineage, "Show where a ModelKit came from (or, with --down, what was built from it)",
            "kitops-flows lineage reg.example.com/team/churn:v1 --format png -o churn.png")
    p.add_argument("reference")
    p.add_argument("--down", action="store_true", help="walk downstream (children) instead of upstream (inputs)")
    p.add_argument("--depth", type=int, default=None, help="maximum ModelKit hops (default: no limit)")
    p.add_argument("--format", choices=("json", "mermaid", "dot", "png", "svg"), default="json")
    p.add_argument("-o", "--output", help="write to FILE instead of stdout (needed for png/svg on a terminal)")
    _network_flags(p)

    p = add("promote", cmd_promote, "Move a stage tag (staging, production, retired) to a ModelKit, with history",
            "kitops-flows promote reg.example.com/team/churn:v3 production")
    p.add_argument("reference")
    p.add_argument("stage", choices=("staging", "production", "retired"))
    p.add_argument("--require-signature", metavar="KEY.pub", help="refuse unless signed by this public key")
    _network_flags(p)

    p = add("history", cmd_history, "Show the stage moves of a repository, newest first",
            "kitops-flows history reg.example.com/team/churn")
    p.add_argument("repository")
    p.add_argument("--format", choices=("table", "json"), default="table")
    _network_flags(p)

    add("version", cmd_version, "Print the version", "kitops-flows version")

    from . import cli_diff, cli_index

    cli_diff.register(sub, _network_flags)
    cli_index.register(sub, _network_flags)
    from . import cli_cache

    cli_cache.register(sub, _network_flags)
    from . import cli_discover

    cli_discover.register(sub, _network_flags)
    from . import cli_s3

    cli_s3.register(sub)
    cli_skill.register(add)
    cli_import.register(add)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    level = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
             "error": logging.ERROR}[args.log_level]
    if args.verbose:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    if args.progress == "none":
        handler.addFilter(lambda record: record.module != "progress")  # ProgressReporter's lines
    LOG.handlers[:] = [handler]
    LOG.setLevel(level)
    LOG.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(cli_skill.as_skill_argv(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # argparse exits 2 on a usage error; kit (cobra) exits 1, --help exits 0
        return 1 if e.code == 2 else int(e.code or 0)
    # main() may run inside another program (tests, a notebook): give the logger back as it was, so no
    # handler outlives this call writing to a stream that is gone by then
    saved = LOG.handlers[:], LOG.level, LOG.propagate
    _configure_logging(args)
    try:
        return args.func(args, _client(args))
    except KitopsError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as e:  # bad paths, permissions, disk full: still one clear line
        if LOG.isEnabledFor(logging.DEBUG):
            raise
        print(f"Error: {e}", file=sys.stderr)
        return 1
    finally:
        LOG.handlers[:] = saved[0]
        LOG.setLevel(saved[1])  # setLevel, not .level =: it also clears logging's enabled-for cache
        LOG.propagate = saved[2]


if __name__ == "__main__":
    sys.exit(main())

"""S3 on the command line: ``pack --source``, ``--if-changed``, ``--parent`` and ``unpack --to s3://``.

    kitops-flows pack ./job -t reg.example.com/team/churn:v7 --push \\
        --source train=s3://ml-data/churn/2026-11-26/ --source model.bin=s3://ml-models/churn/7/model.bin \\
        --if-changed --parent reg.example.com/team/features:v3
    kitops-flows unpack reg.example.com/team/churn:v7 --to s3://serving/churn/ --filter datasets:train \\
        --existing overwrite --delete

S3 settings come from boto3's own chain (``AWS_PROFILE``, ``AWS_ENDPOINT_URL_S3``, env keys, instance
role). ``register`` adds these flags to the existing ``pack`` and ``unpack`` parsers and routes a call
to the S3 path only when an S3 flag is given; without them both commands behave exactly as before.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import KitopsError
from .kitfile import kitfile_arg

if TYPE_CHECKING:
    from .api import KitOpsClient

LOG = logging.getLogger("kitops_flows")
Command = Any  # cli.Command; not imported to keep this module free of a cycle with cli.py


def parse_source(text: str) -> tuple[str, str]:
    """``NAME=s3://bucket/prefix/`` -> ``("NAME", "s3://bucket/prefix/")``.

    >>> parse_source("train=s3://ml-data/churn/")
    ('train', 's3://ml-data/churn/')
    """
    name, sep, uri = text.partition("=")
    if not sep or not name or not uri.startswith("s3://"):
        raise KitopsError(f"--source {text!r}: expected NAME=s3://bucket/key or NAME=s3://bucket/prefix/, "
                          "where NAME is a Kitfile entry's name or path")
    return name, uri


@contextlib.contextmanager
def s3_errors(uri: str, action: str) -> Iterator[None]:
    """boto3 missing or a raw botocore error -> one ``S3SourceError`` line naming the URI."""
    try:
        yield
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("boto3", "botocore"):
            raise KitopsError("S3 needs boto3: pip install 'kitops-flows[s3]'") from None
        raise
    except KitopsError:
        raise
    except Exception as e:
        if type(e).__module__.split(".")[0] not in ("botocore", "boto3", "s3transfer"):
            raise
        from .s3 import s3_error

        raise s3_error(e, uri, action) from e


def _cmd_pack(original: Command) -> Command:
    def cmd(args: argparse.Namespace, kit: KitOpsClient) -> int:
        if not (args.source or args.if_changed or args.parent or args.local_copy):
            return int(original(args, kit))
        sources: dict[str, str] = {}
        for text in args.source or ():
            name, uri = parse_source(text)
            if name in sources:
                raise KitopsError(f"--source {name}= is given twice ({sources[name]} and {uri})")
            sources[name] = uri
        kwargs: dict[str, Any] = {"reference": args.tag, "compression": args.compression,
                                  "layer_format": args.layer_format, "push": args.push,
                                  "parents": tuple(args.parent or ())}
        if args.push and sources:  # S3 data straight to the registry unless asked to keep a copy (also --if-changed)
            kwargs["local_copy"] = bool(args.local_copy)
        elif args.local_copy:
            kwargs["local_copy"] = True
        if args.file is not None:
            kwargs["kitfile"] = _kitfile_arg(args.file)
        shown = ", ".join(sources.values()) or args.directory
        with s3_errors(shown, "packing"):
            if args.if_changed:
                if not args.tag:
                    raise KitopsError("--if-changed needs -t REF: the tag whose ModelKit the inputs are compared with")
                desc, packed = kit.pack_if_changed(args.directory, sources=sources, **kwargs)
                if not packed:
                    print(f"Unchanged: {desc.pinned} was built from the same inputs; not packed", file=sys.stderr)
                    print(desc.reference if args.tag else desc.digest)
                    return 0
            else:
                desc = kit.pack(args.directory, sources=sources or None, **kwargs)
        if args.push:  # kit's last line for pack --push; "Model saved: <digest>" is pack's own log line
            LOG.info("Model pushed: %s", desc.digest)
        print(desc.reference if args.tag else desc.digest)
        return 0

    return cmd


def _kitfile_arg(value: str) -> Any:
    return kitfile_arg(value)


def _cmd_unpack(original: Command) -> Command:
    def cmd(args: argparse.Namespace, kit: KitOpsClient) -> int:
        if not args.to:
            if args.existing or args.delete:
                raise KitopsError("--existing and --delete apply to --to s3://…; for a directory use -o or -i")
            return int(original(args, kit))
        if not args.to.startswith("s3://"):
            raise KitopsError(f"--to {args.to!r}: expected s3://bucket/prefix/ (use -d for a directory)")
        if args.dir not in (None, "."):
            raise KitopsError("give either -d DIR or --to s3://…, not both")
        if args.include_remote:
            raise KitopsError("--include-remote applies to directories; remote datasets are already in S3")
        existing = args.existing or ("overwrite" if args.overwrite else "skip" if args.ignore_existing else "error")
        with s3_errors(args.to, "unpacking"):
            result = kit.unpack_to_s3(args.reference, args.filter or None, args.to, existing=existing,
                                      delete=args.delete)
        for key in result.keys:
            print(f"s3://{result.uri[5:].split('/', 1)[0]}/{key}")
        print(f"Unpacked {len(result.keys)} object(s) to {result.uri}: {len(result.uploaded)} uploaded, "
              f"{len(result.replaced)} replaced, {len(result.skipped)} already there, {len(result.kept)} kept, "
              f"{len(result.deleted)} deleted; marker {result.marker}", file=sys.stderr)
        return 0

    return cmd


def register(sub: argparse._SubParsersAction) -> None:
    """Add the S3 flags to the ``pack`` and ``unpack`` subcommands already in ``sub``."""
    pack = sub.choices["pack"]
    pack.add_argument("--source", action="append", metavar="NAME=S3URI",
                      help="stream a Kitfile entry (name or path) from s3://bucket/key or s3://bucket/prefix/; "
                           "repeatable")
    pack.add_argument("--if-changed", action="store_true",
                      help="pack only if the S3 objects or the Kitfile differ from what -t's ModelKit was built from")
    pack.add_argument("--parent", action="append", metavar="REF",
                      help="a ModelKit this one was built from (recorded in lineage); repeatable")
    pack.add_argument("--local-copy", action="store_true",
                      help="with --push and --source: also keep the layers in the local store (default: stream "
                           "them straight to the registry, no local copy)")
    pack.set_defaults(func=_cmd_pack(pack.get_default("func")))

    unpack = sub.choices["unpack"]
    unpack.add_argument("--to", metavar="S3URI", help="extract into s3://bucket/prefix/ instead of a directory")
    unpack.add_argument("--existing", choices=("error", "overwrite", "skip"),
                        help="with --to: keys holding other bytes are refused (default), replaced once every new "
                             "object is uploaded, or kept")
    unpack.add_argument("--delete", action="store_true",
                        help="with --to: after success, delete keys under the prefix the ModelKit does not have")
    unpack.set_defaults(func=_cmd_unpack(unpack.get_default("func")))


__all__ = ["parse_source", "register", "s3_errors"]

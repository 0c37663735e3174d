"""``kitops-flows import REPO``: a git repository (or, later, Hugging Face) as a ModelKit (kit's §5.4).

    kitops-flows import ./my-model-repo --tool git -t team/model:v1
    kitops-flows import https://git.example.com/org/repo.git --ref v2 --attestation-output predicate.json
    cosign attest --predicate predicate.json --type slsaprovenance1 REF

git: clone with the ``git`` binary into ``$KITOPS_HOME/cache/import``, resolve HEAD, drop ``.git``, use the
repository's Kitfile (or ``-f``) or generate one like ``init``, pack into the local store, then write the SLSA
predicate (atomically; ``-`` = stdout) and log ``ModelKit manifest digest: <d>``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import KitopsError

if TYPE_CHECKING:
    from .api import KitOpsClient

LOG = logging.getLogger("kitops_flows")
KITFILE_NAMES = ("Kitfile", "kitfile", ".kitfile")


def cmd_import(args: argparse.Namespace, kit: KitOpsClient) -> int:
    from .gitimport import GitSource, clone, is_hf

    if args.concurrency < 1:
        raise KitopsError(f"--concurrency must be at least 1 (got {args.concurrency})")
    tool = args.tool or ("hf" if is_hf(args.repository) else "git")
    if tool == "hf":
        raise KitopsError("importing from Hugging Face needs network access to huggingface.co and is not supported "
                          "yet; clone the repository and use: kitops-flows import PATH --tool git")
    started = time.time()
    src = GitSource.parse(args.repository)
    tag = args.tag or f"{src.name}:latest"
    work_root = kit.store.home / "cache" / "import"
    work_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="git-", dir=work_root))
    try:
        repo_dir = work / "repo"
        LOG.info("Cloning %s", src.uri[4:])
        commit = clone(src, repo_dir, ref=args.ref, token=args.token)
        kitfile = _kitfile(args, repo_dir, src.name)
        desc = kit.pack(repo_dir, kitfile=kitfile, reference=tag)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.attestation_output:
        _write_predicate(args.attestation_output, src.uri, commit, desc.config_digest, desc.digest, started)
        LOG.info("ModelKit manifest digest: %s", desc.digest)
    if args.attestation_output != "-":
        print(desc.reference)
    return 0


def _kitfile(args: argparse.Namespace, repo_dir: Path, name: str) -> object:
    """-f, else the repository's own Kitfile (pack finds it), else one generated like ``init``."""
    if args.file:
        from .kitfile import kitfile_arg

        return kitfile_arg(args.file)
    if any((repo_dir / n).is_file() for n in KITFILE_NAMES):
        return None
    if args.depth is not None:
        raise KitopsError("--depth is not supported yet: the Kitfile is generated over the whole repository; "
                          "drop --depth or give a Kitfile with -f")
    from .generate import generate_kitfile

    LOG.info("No Kitfile in the repository: generating one")
    return generate_kitfile(repo_dir, name=name.rsplit("/", 1)[-1])


def _write_predicate(output: str, uri: str, commit: str, config_digest: str, manifest_digest: str,
                     started: float) -> None:
    import platform

    from . import __version__
    from .atomicfile import write_atomic
    from .importprovenance import ImportPredicate

    predicate = ImportPredicate(uri, commit, config_digest, manifest_digest,
                                {"kitops-flows": __version__, "python": platform.python_version()},
                                str(uuid.uuid4()), started, time.time())
    data = predicate.to_bytes()
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        write_atomic(Path(output), data)


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("import", cmd_import, "Import a git repository as a ModelKit (Hugging Face: not supported yet)",
            "kitops-flows import ./repo --tool git -t team/repo:v1 --attestation-output predicate.json")
    p.add_argument("repository", help="git URL, file:// URL or local path (HF org/repo: not supported yet)")
    p.add_argument("--ref", help="branch, tag or commit to import (default: the repository's HEAD; kit's HF "
                                 "default is main)")
    p.add_argument("--token", help="token for the git server (sent as a Bearer header, never logged)")
    p.add_argument("-t", "--tag", help="reference to tag the ModelKit with (default <repo lowercased>:latest)")
    p.add_argument("-f", "--file", help="Kitfile to use instead of the repository's ('-' = stdin)")
    p.add_argument("--tool", choices=("hf", "git"), help="importer (default: hf unless the URL is not Hugging Face)")
    p.add_argument("--concurrency", type=int, default=5, help="parallel transfers (default 5, at least 1)")
    p.add_argument("--depth", type=int, help="Kitfile generation depth (not supported yet)")
    p.add_argument("--attestation-output", metavar="PATH",
                   help="write the SLSA Provenance v1 predicate of the import to PATH ('-' = stdout)")

"""``kit diff``: compare two ModelKits' manifests (config, annotations, layers), local or remote.

>>> from kitops_flows.api import KitOpsClient
>>> kit = KitOpsClient()                                                     # doctest: +SKIP
>>> a = fetch_for_diff(kit, "local://team/churn:v1")                         # doctest: +SKIP
>>> b = fetch_for_diff(kit, "remote://reg.example.com/team/churn:v2")        # doctest: +SKIP
>>> print(render_diff(a, b), end="")                                         # doctest: +SKIP

Prefixes work as in kit: ``local://`` looks only in the local store, ``remote://`` only in the
registry, and no prefix tries the local store first and falls back to the registry on any error.
"""

from __future__ import annotations

import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .descriptor import Descriptor
from .errors import KitopsError
from .kitoutput import format_bytes, short_digest
from .manifest import ANNOTATION_FILEPATH, Manifest
from .mediatypes import OCI_MANIFEST, LayerMediaType, MediaTypeError, modelpack_base
from .reference import Reference, parse_reference

if TYPE_CHECKING:
    from .api import KitOpsClient

REMOTE_PREFIX = "remote://"
LOCAL_PREFIX = "local://"
_RULE = "---------------------------------------"


class DiffError(KitopsError):
    """A ModelKit to compare could not be read (the message says which, as kit does)."""


@dataclass(frozen=True)
class DiffSide:
    """One ModelKit to compare: the reference as given (without prefix), its manifest digest and manifest."""

    ref: Reference
    digest: str
    manifest: Manifest


@dataclass(frozen=True)
class DiffResult:
    """What differs between two manifests; layer lists are sorted by media type like kit's."""

    same_config: bool
    annotations_match: bool
    shared: tuple[Descriptor, ...]
    unique_a: tuple[Descriptor, ...]
    unique_b: tuple[Descriptor, ...]


def strip_prefix(arg: str) -> str:
    """The reference without kit's ``remote://`` then ``local://`` prefix."""
    return arg.removeprefix(REMOTE_PREFIX).removeprefix(LOCAL_PREFIX)


def fetch_for_diff(kit: KitOpsClient, arg: str) -> DiffSide:
    """Read the manifest ``arg`` names, honouring kit's ``local://`` / ``remote://`` prefixes."""
    ref = parse_reference(strip_prefix(arg))
    if arg.startswith(REMOTE_PREFIX):
        return _remote_side(kit, ref)
    if arg.startswith(LOCAL_PREFIX):
        return _local_side(kit, ref)
    try:
        return _local_side(kit, ref)
    except KitopsError:
        return _remote_side(kit, ref)


def _local_side(kit: KitOpsClient, ref: Reference) -> DiffSide:
    desc = kit.store.resolve(ref)
    data = kit.store.read_blob(desc.digest, desc.size)
    return DiffSide(ref, desc.digest, Manifest.from_bytes(data, f"manifest of {ref.display()}"))


def _remote_side(kit: KitOpsClient, ref: Reference) -> DiffSide:
    if ref.is_local_only:
        raise KitopsError(f"{ref.display()} names no registry, so it cannot be read remotely")
    fetched = kit.registry_client(ref.registry).get_manifest(ref.repository, ref.reference)
    if fetched.media_type not in (OCI_MANIFEST, ""):
        raise KitopsError(f"{ref} is not an image manifest (mediaType {fetched.media_type})")
    return DiffSide(ref, fetched.digest, Manifest.from_bytes(fetched.data, f"manifest of {ref}"))


def fetch_pair(kit: KitOpsClient, arg_a: str, arg_b: str) -> tuple[DiffSide, DiffSide]:
    """Both sides, fetched concurrently as kit does; errors name ModelKit1 or ModelKit2."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(fetch_for_diff, kit, arg) for arg in (arg_a, arg_b)]
        sides = []
        for n, future in enumerate(futures, start=1):
            try:
                sides.append(future.result())
            except KitopsError as e:
                raise DiffError(f"Failed to get manifest for ModelKit{n}: {e}") from e
    return sides[0], sides[1]


def compare_manifests(a: Manifest, b: Manifest) -> DiffResult:
    """Match B's layers to unused A layers of the same digest; paths must agree when both layers carry one
    (ModelKits packed before kit 1.10 have no ``org.cncf.model.filepath``)."""
    unused: dict[str, list[Descriptor]] = {}
    for layer in a.layers:
        unused.setdefault(layer.digest, []).append(layer)
    shared: list[Descriptor] = []
    unique_b: list[Descriptor] = []
    for layer in b.layers:
        candidates = unused.get(layer.digest, [])
        path_b = (layer.annotations or {}).get(ANNOTATION_FILEPATH, "")
        match = next((i for i, la in enumerate(candidates) if _same_path((la.annotations or {}).get(
            ANNOTATION_FILEPATH, ""), path_b)), None)
        if match is None:
            unique_b.append(layer)
        else:
            shared.append(layer)
            del candidates[match]
    unique_a = [layer for layers in unused.values() for layer in layers]

    def by_type(layers: list[Descriptor]) -> tuple[Descriptor, ...]:
        return tuple(sorted(layers, key=lambda d: d.media_type))

    return DiffResult(
        same_config=a.config.digest == b.config.digest,
        annotations_match=a.annotations == b.annotations,
        shared=by_type(shared), unique_a=by_type(unique_a), unique_b=by_type(unique_b),
    )


def _same_path(path_a: str, path_b: str) -> bool:
    return not path_a or not path_b or posixpath.normpath(path_a) == posixpath.normpath(path_b)


def layer_type(media_type: str) -> str:
    """The short type kit shows for a layer: kit base (``model``…) or ModelPack base (``weight``…)."""
    if media_type == OCI_MANIFEST:
        return "manifest"
    try:
        parsed = LayerMediaType.parse(media_type)
    except MediaTypeError:
        return "(invalid media type)"
    return modelpack_base(parsed.base) if parsed.modelpack else parsed.base


def render_diff(a: DiffSide, b: DiffSide) -> str:
    """kit diff's stdout for two ModelKits (``ModelKits are identical`` when the manifests are the same)."""
    if a.digest == b.digest:
        return "ModelKits are identical\n"
    result = compare_manifests(a.manifest, b.manifest)
    lines = ["Comparing:", f"  ModelKit1: {a.ref}", f"  ModelKit2: {b.ref}", "", "Configurations:", _RULE]
    if result.same_config:
        lines += [f"  Configs are identical (Digest: {short_digest(a.manifest.config.digest)})", ""]
    else:
        lines += ["Configs differ:", f"  ModelKit1 Config Digest: {short_digest(a.manifest.config.digest)}",
                  f"  ModelKit2 Config Digest: {short_digest(b.manifest.config.digest)}", ""]
    lines += ["Annotations:", _RULE]
    lines += ["  Annotations are identical ", ""] if result.annotations_match else ["  Annotations does not match", ""]
    lines += _layer_block("Shared Layers", result.shared)
    lines += _layer_block(f"Unique Layers to ModelKit1 ({a.ref})", result.unique_a)
    lines += _layer_block(f"Unique Layers to ModelKit2 ({b.ref})", result.unique_b)
    return "\n".join(lines) + "\n"


def _layer_block(title: str, layers: tuple[Descriptor, ...]) -> list[str]:
    rows = [title, _RULE]
    if layers:
        rows.append("Type    | Digest             | Size")
        rows += [f"{layer_type(l.media_type):<7} | {short_digest(l.digest):<18} | {format_bytes(l.size)}"
                 for l in layers]
    else:
        rows.append("<none>")
    return [*rows, ""]

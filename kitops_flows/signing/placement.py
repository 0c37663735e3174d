"""Where signatures live in a registry, read and written through the core's ``RegistryClient``.

Two storage modes, as cosign has them:

- ``tag`` (legacy, every cosign reads it; the default on registries without the referrers API such
  as CNCF distribution 2.8): signatures appended as layers of the manifest at ``sha256-<hex>.sig``,
  attestations at ``sha256-<hex>.att``;
- ``referrers`` (cosign v3's default): one Sigstore-bundle referrer manifest per signature, pushed
  by digest with ``subject`` = the ModelKit and listed by the OCI 1.1 referrers API, or on registries
  without it by the ``sha256-<hex>`` index tag that this module maintains (as ggcr does).

>>> repo = SignatureRepository(client.registry_client("127.0.0.1:5000"), "team/churn")   # doctest: +SKIP
>>> repo.append("sha256-….sig", Layer(SIMPLE_SIGNING_MEDIA_TYPE, payload, {SIGNATURE_ANNOTATION: sig}))  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import KitopsError, NotFoundError
from ..mediatypes import OCI_INDEX, OCI_MANIFEST
from ..registry import RegistryClient
from .dsse import BUNDLE_MEDIA_PREFIX, BUNDLE_MEDIA_TYPE
from .layout import (
    EMPTY_BYTES,
    MAX_LAYERS,
    MAX_PAYLOAD,
    SIGNATURE_ANNOTATION,
    Layer,
    fallback_index,
    index_entry,
    layered_config,
    layered_manifest,
    referrer_manifest,
    referrers_tag,
    sha256_of,
)

MODES = ("auto", "tag", "referrers")


@dataclass(frozen=True)
class StoredLayer:
    """A layer read back from a ``.sig``/``.att`` manifest: descriptor fields and a way to fetch its blob."""

    index: int
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str]


@dataclass(frozen=True)
class BundleRef:
    """A bundle referrer found for a subject: the referrer manifest's digest and its single bundle layer."""

    manifest_digest: str
    layer_digest: str
    layer_size: int
    predicate_type: str


@dataclass
class SignatureRepository:
    """Signature storage of one repository in one registry."""

    rc: RegistryClient
    repository: str

    @property
    def where(self) -> str:
        return f"{self.rc.registry}/{self.repository}"

    # -- blobs ---------------------------------------------------------------------------------------
    def push_bytes(self, data: bytes) -> str:
        digest = sha256_of(data)
        self.rc.push_blob(self.repository, digest, len(data), lambda: io.BytesIO(data))
        return digest

    def read_blob(self, digest: str, size: int, what: str) -> bytes:
        """A small blob, verified against its digest by the client (DigestMismatchError if altered)."""
        if size > MAX_PAYLOAD:
            raise KitopsError(f"{what} is {size} bytes, over cosign's {MAX_PAYLOAD}-byte limit")
        with self.rc.open_blob(self.repository, digest, size) as f:
            data = f.read(size + 1)
        return data

    # -- legacy tags -----------------------------------------------------------------------------------
    def read_layers(self, tag: str) -> list[StoredLayer] | None:
        """The layers of the manifest at ``tag``; None when the tag does not exist."""
        try:
            fetched = self.rc.get_manifest(self.repository, tag)
        except NotFoundError:
            return None
        doc = _json_object(fetched.data, f"{self.where}:{tag}")
        layers = doc.get("layers") or []
        if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
            raise KitopsError(f"{self.where}:{tag} has no layer list or more than {MAX_LAYERS} layers")
        out = []
        for i, d in enumerate(layers, 1):
            if not isinstance(d, dict):
                raise KitopsError(f"{self.where}:{tag} layer {i} is not a descriptor")
            ann = d.get("annotations") or {}
            out.append(StoredLayer(i, str(d.get("mediaType", "")), str(d.get("digest", "")), int(d.get("size", 0)),
                                   {str(k): str(v) for k, v in ann.items()} if isinstance(ann, dict) else {}))
        return out

    def append(self, tag: str, layer: Layer, is_duplicate: Callable[[StoredLayer, bytes], bool] | None = None) -> bool:
        """Append ``layer`` to the manifest at ``tag`` (created if missing); False if a duplicate was there.

        Read-modify-write, like cosign: two signers racing on one tag can lose a layer; signing again
        restores it.
        """
        existing = self.read_layers(tag) or []
        if is_duplicate is not None:
            for old in existing:
                if old.media_type == layer.media_type and old.digest == layer.digest:
                    payload = self.read_blob(old.digest, old.size, f"layer {old.index} of {self.where}:{tag}")
                    if is_duplicate(old, payload):
                        return False
        descs: list[dict[str, Any]] = [{"mediaType": l.media_type, "size": l.size, "digest": l.digest,
                                        "annotations": l.annotations} for l in existing]
        descs.append(dict(layer.descriptor()))
        self.push_bytes(layer.data)
        config = layered_config([d["digest"] for d in descs])
        self.push_bytes(config)
        self.rc.put_manifest(self.repository, tag, layered_manifest(config, descs), OCI_MANIFEST)
        return True

    # -- referrers ---------------------------------------------------------------------------------------
    def has_referrers_api(self, subject: str) -> bool:
        return self.rc.referrers(self.repository, subject) is not None

    def put_bundle(self, subject: dict[str, Any], bundle_blob: bytes, predicate_type: str, created: str,
                   *, api: bool | None = None) -> str:
        """Push a bundle referrer of ``subject`` and list it (fallback index unless the registry has the API)."""
        self.push_bytes(EMPTY_BYTES)
        self.push_bytes(bundle_blob)
        manifest = referrer_manifest(bundle_blob, subject, predicate_type, created)
        digest = self.rc.put_manifest(self.repository, sha256_of(manifest), manifest, OCI_MANIFEST)
        if api is None:
            api = self.has_referrers_api(subject["digest"])
        if not api:
            self._add_to_fallback(subject["digest"], index_entry(manifest, BUNDLE_MEDIA_TYPE))
        return digest

    def _add_to_fallback(self, subject: str, entry: dict[str, Any]) -> None:
        tag = referrers_tag(subject)
        entries = self._fallback_entries(subject)
        if any(e.get("digest") == entry["digest"] for e in entries):
            return
        self.rc.put_manifest(self.repository, tag, fallback_index([*entries, entry]), OCI_INDEX)

    def _fallback_entries(self, subject: str) -> list[dict[str, Any]]:
        tag = referrers_tag(subject)
        try:
            fetched = self.rc.get_manifest(self.repository, tag)
        except NotFoundError:
            return []
        items = _json_object(fetched.data, f"{self.where}:{tag}").get("manifests") or []
        if not isinstance(items, list) or not all(isinstance(e, dict) and "digest" in e for e in items):
            raise KitopsError(f"{self.where}:{tag} is not an OCI index of referrers; delete that tag and sign again")
        return items

    def referrer_entries(self, subject: str) -> list[dict[str, Any]]:
        """Referrers of ``subject``: the API when the registry has it, else the ``sha256-<hex>`` index."""
        listed = self.rc.referrers(self.repository, subject)
        if listed is not None:
            return [d.to_dict() for d in listed]
        return self._fallback_entries(subject)

    def bundles(self, subject: str) -> list[BundleRef]:
        """Referrers that are cosign bundles: exactly one layer whose media type is a Sigstore bundle."""
        found = []
        for entry in self.referrer_entries(subject):
            if entry.get("mediaType", OCI_MANIFEST) not in (OCI_MANIFEST, ""):
                continue
            try:
                fetched = self.rc.get_manifest(self.repository, str(entry["digest"]))
            except NotFoundError:
                continue
            doc = _json_object(fetched.data, f"referrer {entry['digest']} in {self.where}")
            layers = doc.get("layers") or []
            if len(layers) != 1 or not str(layers[0].get("mediaType", "")).startswith(BUNDLE_MEDIA_PREFIX):
                continue
            ann = doc.get("annotations") or {}
            found.append(BundleRef(fetched.digest, str(layers[0].get("digest", "")), int(layers[0].get("size", 0)),
                                   str(ann.get("dev.sigstore.bundle.predicateType", ""))))
        return found


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise KitopsError(f"{what} is not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise KitopsError(f"{what} is not a JSON object")
    return doc


__all__ = ["MODES", "SIGNATURE_ANNOTATION", "BundleRef", "SignatureRepository", "StoredLayer"]

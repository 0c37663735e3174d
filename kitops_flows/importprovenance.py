"""The SLSA Provenance v1 *predicate* ``import --attestation-output`` writes (kit-features-1.17.md §5.4).

Only the predicate body (no ``_type``/``subject``/``predicateType`` wrapper), keys in kit's order,
2-space indented plus a newline, for ``cosign attest --predicate``:

    >>> p = ImportPredicate("git+https://example.com/org/repo", "0" * 40, "sha256:" + "a" * 64,
    ...                     "sha256:" + "b" * 64, {"kitops-flows": "1.0"}, "00000000-0000-4000-8000-000000000000",
    ...                     1777636800.0, 1777636801.5)
    >>> p.to_bytes().decode().splitlines()[2]
    '    "buildType": "https://kitops.org/import/v1",'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import KitopsError

BUILD_TYPE = "https://kitops.org/import/v1"
BUILDER_ID = "https://kitops.org/kit"


def rfc3339_nano(ts: float) -> str:
    """Go's RFC3339Nano in UTC: fraction with trailing zeros trimmed (``12:00:01.5Z``, ``12:00:00Z``)."""
    t = datetime.fromtimestamp(ts, tz=timezone.utc)
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


@dataclass(frozen=True)
class ImportPredicate:
    """What an import resolved: source URI + commit, the packed Kitfile config digest, the manifest digest."""

    source_uri: str
    commit: str
    kitfile_digest: str  # the Kit-format config blob digest (sha256 of the Kitfile JSON as packed)
    manifest_digest: str
    builder_version: dict[str, str]
    invocation_id: str
    started: float
    finished: float

    def validate(self) -> None:
        """kit's refusals: a predicate that cannot be verified is never written."""
        if not self.source_uri:
            raise KitopsError("provenance: source URI is empty")
        if not self.commit:
            raise KitopsError(f"provenance: source commit SHA missing for {self.source_uri}; "
                              "predicate would be unverifiable")
        if not self.kitfile_digest:
            raise KitopsError("provenance: Kitfile config digest is empty")
        if not self.manifest_digest:
            raise KitopsError("provenance: manifest digest is empty")

    def to_dict(self) -> dict[str, object]:
        self.validate()
        algo, _, hexpart = self.kitfile_digest.partition(":")
        return {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "source": {"uri": self.source_uri, "digest": {"gitCommit": self.commit}},
                    "kitfile": {"digest": {algo: hexpart}},
                },
                "resolvedDependencies": [],
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": dict(sorted(self.builder_version.items()))},
                "metadata": {"invocationId": self.invocation_id, "startedOn": rfc3339_nano(self.started),
                             "finishedOn": rfc3339_nano(self.finished)},
            },
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n").encode()

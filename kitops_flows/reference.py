"""ModelKit references, parsed exactly the way kit parses them.

>>> r = parse_reference("myorg/model:v1")
>>> (r.registry, r.repository, r.reference)
('localhost', 'myorg/model', 'v1')
>>> str(parse_reference("127.0.0.1:5000/team/model@sha256:" + "a" * 64))
'127.0.0.1:5000/team/model@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'

Kit's rules (pkg/lib/repo/util/reference.go): the first path segment is a registry only if it
contains ``.`` or ``:``, otherwise ``localhost`` is assumed; a bare digest means ``localhost/_``;
no tag means ``latest``; ``ref,tag2,tag3`` adds extra tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ReferenceFormatError

DEFAULT_REGISTRY = "localhost"
DEFAULT_REPOSITORY = "_"
DEFAULT_TAG = "latest"

# Distribution's grammar (as oras-go validates it). \Z, not $: $ also matches before a trailing newline.
# Separator "-+", not distribution's old "[-]*": the empty separator adds no names but makes the nested
# repetition backtrack exponentially (a 30-character bad name took minutes).
_REPO_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*\Z")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}\Z")
_BARE_DIGEST_RE = re.compile(r"^(?:sha256|sha384|sha512):[a-zA-Z0-9=_-]*\Z")  # what go-digest would parse
_HOST_RE = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?\Z")


def is_digest(text: str) -> bool:
    """True for a well-formed ``sha256:<64 hex>`` digest (the only algorithm kit writes)."""
    return bool(_DIGEST_RE.match(text))


def validate_digest(text: str, what: str = "digest") -> str:
    """Return ``text`` if it is a sha256 digest, else raise naming ``what``."""
    if not is_digest(text):
        raise ReferenceFormatError(f"invalid {what} {text!r}: expected sha256:<64 lowercase hex characters>")
    return text


_INTERNAL_TAG_RE = re.compile(r"^sha256-[a-f0-9]{64}(?:\.(?:sig|att|sbom))?\Z")


def is_internal_tag(tag: str) -> bool:
    """Bookkeeping tags no user tagged: the referrers fallback index ``sha256-<hex>``, cosign's ``sha256-<hex>.sig``
    / ``.att`` / ``.sbom``, and kitops-flows' own ``kitops-flows-…`` (the stage log). ``list``, sensors and
    lineage leave them out, as kit does.

    >>> [is_internal_tag(t) for t in ("v1", "sha256-" + "a" * 64, "sha256-" + "a" * 64 + ".sig", "kitops-flows-stage-log")]
    [False, True, True, True]
    """
    return bool(_INTERNAL_TAG_RE.match(tag)) or tag.startswith("kitops-flows-")


def validate_tag(tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise ReferenceFormatError(
            f"invalid tag {tag!r}: tags are 1-128 characters of letters, digits, '_', '.' and '-', "
            "and must not start with '.' or '-'"
        )
    return tag


@dataclass(frozen=True)
class Reference:
    """A parsed reference. ``reference`` is the tag or the digest; ``tag`` keeps a tag given alongside a digest."""

    registry: str
    repository: str
    reference: str
    extra_tags: tuple[str, ...] = field(default=())

    @property
    def is_digest(self) -> bool:
        return is_digest(self.reference)

    @property
    def tag(self) -> str | None:
        return None if self.is_digest else self.reference

    @property
    def digest(self) -> str | None:
        return self.reference if self.is_digest else None

    @property
    def tags(self) -> list[str]:
        """The main tag (if any) followed by the extra ``,tag`` tags."""
        return ([self.reference] if not self.is_digest else []) + list(self.extra_tags)

    @property
    def repo_path(self) -> str:
        """``registry/repository``, the key kit's local store uses."""
        return f"{self.registry}/{self.repository}"

    @property
    def is_local_only(self) -> bool:
        """References on kit's default registry never go to the network."""
        return self.registry == DEFAULT_REGISTRY

    def with_reference(self, reference: str) -> Reference:
        return Reference(self.registry, self.repository, reference)

    def __str__(self) -> str:
        sep = "@" if self.is_digest else ":"
        return f"{self.repo_path}{sep}{self.reference}"

    def display(self) -> str:
        """Like kit's FormatRepositoryForDisplay: hide the defaulted registry/repository."""
        text = str(self)
        if text.startswith(DEFAULT_REGISTRY + "/"):
            text = text[len(DEFAULT_REGISTRY) + 1 :]
        if text.startswith(DEFAULT_REPOSITORY + "@"):
            text = text[len(DEFAULT_REPOSITORY) + 1 :]
        return text


def parse_reference(text: str) -> Reference:
    """Parse ``[registry/]repo[:tag][@digest][,tag2...]`` as kit does; raise ReferenceFormatError otherwise."""
    raw = text
    text = text.strip()
    if not text:
        raise ReferenceFormatError("empty ModelKit reference: expected [registry/]repository[:tag|@digest]")
    if "://" in text:
        raise ReferenceFormatError(
            f"invalid reference {raw!r}: remove the scheme ({text.split('://')[0]}://); "
            "write registry/repository:tag, and use --plain-http for http registries"
        )
    if _BARE_DIGEST_RE.match(text):
        validate_digest(text)
        return Reference(DEFAULT_REGISTRY, DEFAULT_REPOSITORY, text)

    first, *extra = text.split(",")
    head, sep, rest = first.partition("/")
    if sep and (":" in head or "." in head):
        registry, unprocessed = head, rest
        if not _HOST_RE.match(registry):
            raise ReferenceFormatError(f"invalid registry host {registry!r} in reference {raw!r}")
    else:
        registry, unprocessed = DEFAULT_REGISTRY, first

    has_digest = has_tag = False
    if "@" in unprocessed:
        has_digest = True
        repo, _, ref = unprocessed.partition("@")
        repo = repo.split(":", 1)[0]
    elif ":" in unprocessed:
        has_tag = True
        repo, _, ref = unprocessed.partition(":")
    else:
        repo, ref = unprocessed, DEFAULT_TAG

    if repo.lower() != repo:
        raise ReferenceFormatError(f"repository ({repo}) name must be lowercase (in reference {raw!r})")
    if not repo or not _REPOSITORY_RE.match(repo):
        raise ReferenceFormatError(
            f"invalid repository {repo!r} in reference {raw!r}: use lowercase letters, digits and "
            "separators (. _ - /), starting and ending with a letter or digit"
        )
    if has_tag:
        validate_tag(ref)
    elif has_digest:
        validate_digest(ref, "digest in reference")
    for tag in extra:
        validate_tag(tag)
    return Reference(registry, repo, ref, tuple(extra))

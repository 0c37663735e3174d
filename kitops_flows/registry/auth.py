"""The registry auth dance: anonymous, HTTP basic, and bearer tokens from a token service.

A registry tells a client how to authenticate in the ``WWW-Authenticate`` header of a 401:

* ``Basic realm="…"``: send ``Authorization: Basic base64(user:pass)`` on every request
  (htpasswd registries). oras-py fails here unless told ``auth_backend="basic"``; we just follow
  the challenge.
* ``Bearer realm="https://auth.example/token",service="reg",scope="repository:r:pull"``: GET the
  realm with ``service`` and ``scope`` (basic credentials if we have any, else anonymous), and
  send ``Authorization: Bearer <token>``. Tokens are cached per scope set until they expire;
  a 401 with a cached token drops it and fetches a new one.

``Authenticator`` keeps what it learned per registry (thread-safe; one per ``RegistryClient``)::

    auth = Authenticator("reg.example.com", credentials, session, plain_http=False)
    header = auth.authorization(["repository:team/model:pull"])    # None until a challenge was seen
    ... send; on 401: auth.learn(response, scopes); send again with the new header
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from .credentials import RegistryCredentials
from .errors import RegistryAuthError, describe_error_body, read_error_body
from .retry import TransientError, parse_retry_after

TOKEN_EXPIRY_MARGIN = 10.0  # refresh a little early: clocks and queues differ
DEFAULT_TOKEN_LIFETIME = 60.0  # the token spec's default when expires_in is missing


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def delete_scope(repository: str) -> str:
    return f"repository:{repository}:delete"


@dataclass(frozen=True)
class Challenge:
    """One parsed ``WWW-Authenticate`` challenge; ``scheme`` is lowercased."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


_PARAM_RE = re.compile(r'\s*([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str) -> Challenge | None:
    """The Bearer challenge of a header if it has one, else its Basic challenge, else None.

    >>> c = parse_challenge('Bearer realm="https://a/token",service="reg",scope="repository:x:pull,push"')
    >>> c.scheme, c.params["scope"]
    ('bearer', 'repository:x:pull,push')
    >>> parse_challenge('Basic realm="kitops-ci"').scheme
    'basic'
    """
    found: dict[str, Challenge] = {}
    for m in re.finditer(r"(?i)\b(basic|bearer)\b", header):
        scheme = m.group(1).lower()
        rest = header[m.end():]
        params: dict[str, str] = {}
        pos = 0
        while True:
            pm = _PARAM_RE.match(rest, pos)
            if not pm or pm.end() == pos:
                break
            key = pm.group(1).lower()
            if key in ("basic", "bearer"):
                break
            value = pm.group(2) if pm.group(2) is not None else pm.group(3) or ""
            params[key] = re.sub(r"\\(.)", r"\1", value)
            pos = pm.end()
        found.setdefault(scheme, Challenge(scheme, params))
    return found.get("bearer") or found.get("basic")


def merge_scopes(*groups: Sequence[str]) -> tuple[str, ...]:
    """Union of ``type:name:actions`` scopes, actions merged per resource, sorted (a stable cache key).

    >>> merge_scopes(["repository:a:pull"], ["repository:a:push,pull", "repository:b:pull"])
    ('repository:a:pull,push', 'repository:b:pull')
    """
    merged: dict[str, set[str]] = {}
    for group in groups:
        for scope in group:
            for one in scope.split():
                resource, sep, actions = one.rpartition(":")
                if not sep:
                    continue
                merged.setdefault(resource, set()).update(a for a in actions.split(",") if a)
    return tuple(f"{res}:{','.join(sorted(acts))}" for res, acts in sorted(merged.items()))


@dataclass
class _Token:
    value: str
    expires_at: float


class Authenticator:
    """Chooses the Authorization header for requests to one registry, learning from its 401s."""

    def __init__(
        self,
        registry: str,
        credentials: RegistryCredentials | None,
        session: requests.Session,
        *,
        plain_http: bool,
        timeout: tuple[float, float] = (5.0, 60.0),
        login_hint: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self._session = session
        self._plain_http = plain_http
        self._timeout = timeout
        self._login_hint = login_hint
        self._clock = clock
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._lock = threading.Lock()
        self.token_requests = 0  # how many times the token service was asked (tests check caching)

    @property
    def scheme(self) -> str | None:
        """``basic``, ``bearer`` or None (no challenge seen yet: anonymous so far)."""
        return self._challenge.scheme if self._challenge else None

    def authorization(self, scopes: Sequence[str]) -> str | None:
        """The header value to send with a request needing ``scopes`` (may fetch a token)."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self.credentials.basic_auth_value() if self.credentials else None
        return "Bearer " + self._token(challenge, merge_scopes(scopes))

    def learn(self, resp: requests.Response, scopes: Sequence[str], sent: str | None) -> bool:
        """Digest a 401: remember its challenge, drop stale tokens; True if sending again may succeed."""
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return False
        if challenge.scheme == "bearer" and challenge.params.get("scope"):
            scopes = merge_scopes(scopes, [challenge.params["scope"]])
        with self._lock:
            self._challenge = challenge
            self._tokens.pop(merge_scopes(scopes), None)
        if challenge.scheme == "basic":
            return self.credentials is not None and sent is None
        return sent is None or sent.startswith("Bearer ")

    def forget_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    # -- token service ---------------------------------------------------------------------------------
    def _token(self, challenge: Challenge, scopes: tuple[str, ...]) -> str:
        with self._lock:  # one fetch per scope set even with many parallel blob transfers
            cached = self._tokens.get(scopes)
            if cached is not None and cached.expires_at > self._clock():
                return cached.value
            token = self._fetch_token(challenge, scopes)
            self._tokens[scopes] = token
            return token.value

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> _Token:
        realm = challenge.realm
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryAuthError(f"registry {self.registry} sent an unusable token realm {realm!r}")
        if parts.scheme == "http" and not self._plain_http and self.credentials is not None:
            raise RegistryAuthError(
                f"registry {self.registry} asks for credentials to be sent to a plain-HTTP token service "
                f"({parts.netloc}); refusing. Use --plain-http only if you trust that network"
            )
        params: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            params.append(("service", challenge.params["service"]))
        params.extend(("scope", s) for s in scopes)
        headers = {"Accept": "application/json"}
        if self.credentials is not None:
            headers["Authorization"] = self.credentials.basic_auth_value()
            params.append(("account", self.credentials.username))
        self.token_requests += 1
        resp = self._session.get(realm, params=params, headers=headers, timeout=self._timeout)
        if resp.status_code != 200:
            detail = describe_error_body(read_error_body(resp), resp.headers.get("Content-Type", ""),
                                         resp.status_code)
            who = f"user {self.credentials.username!r}" if self.credentials else "anonymous access"
            if resp.status_code in (401, 403):
                raise RegistryAuthError(
                    f"token service of registry {self.registry} rejected {who}: {detail}. {self._login_hint}"
                )
            if resp.status_code == 429 or resp.status_code >= 500:
                raise TransientError(
                    RegistryAuthError(f"token service of registry {self.registry} failed: {detail}"),
                    retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                )
            raise RegistryAuthError(f"token service of registry {self.registry} failed for {who}: {detail}")
        try:
            doc = resp.json()
            value = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = None, 0.0
        if not isinstance(value, str) or not value:
            raise RegistryAuthError(f"token service of registry {self.registry} answered without a token")
        return _Token(value, self._clock() + max(lifetime - TOKEN_EXPIRY_MARGIN, 1.0))

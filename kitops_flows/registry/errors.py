"""Turn registry HTTP failures into one-line kitops-flows errors, never leaking secrets.

Registries answer errors with the distribution-spec body ``{"errors": [{"code", "message",
"detail"}]}``; like kit (``remote/errors.go``) we read at most 8 KiB of it and print
``<code lowercased>: <message>``::

    >>> describe_error_body(b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}',
    ...                     "application/json", 404)
    'blob_unknown: blob unknown to registry'

Messages are built from the status, the parsed body and names we chose (registry host,
repository, digest); never from ``str(requests exception)``, whose URL could carry an upload
session token, and never from request headers (``Authorization``).
"""

from __future__ import annotations

import errno
import json
import re
import ssl
from http import HTTPStatus

import requests

from ..errors import AuthenticationError, NotFoundError, RegistryError

MAX_ERROR_BODY = 8 * 1024


class RegistryHTTPError(RegistryError):
    """A registry answered with an unexpected status; ``status`` and the spec ``codes`` are kept."""

    def __init__(self, message: str, status: int, codes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes


class RegistryNotFoundError(NotFoundError, RegistryError):
    """A manifest, blob or repository is not in the registry (HTTP 404)."""


class RegistryAuthError(AuthenticationError):
    """401/403 from the registry or its token service."""


class RegistryUnreachableError(RegistryError):
    """Nothing answered (refused, DNS, TLS handshake, timeout after retries)."""


def read_error_body(resp: requests.Response) -> bytes:
    """At most 8 KiB of an error response (the body of a failed blob GET could be huge)."""
    try:
        if getattr(resp, "_content_consumed", False) or resp.raw is None:  # not streamed: already in memory
            data = (resp.content or b"")[:MAX_ERROR_BODY]
        else:
            data = resp.raw.read(MAX_ERROR_BODY, decode_content=True)
    except Exception:  # noqa: BLE001 - a broken error body must not hide the status
        data = b""
    finally:
        resp.close()
    return data or b""


def parse_error_codes(body: bytes) -> list[tuple[str, str]]:
    """``[(code, message), …]`` from a distribution-spec error body; [] when it is not one."""
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return []
    out = []
    for item in errors:
        if isinstance(item, dict):
            out.append((str(item.get("code") or ""), str(item.get("message") or "")))
    return out


def describe_error_body(body: bytes, content_type: str, status: int) -> str:
    """kit's rendering: one ``code: message``, ``multiple errors: a; b``, or the status text."""
    status_text = _status_text(status)
    parsed = parse_error_codes(body) if body else []
    if parsed:
        texts = [f"{code.lower()}: {msg}" if msg else status_text for code, msg in parsed]
        return texts[0] if len(texts) == 1 else "multiple errors: " + "; ".join(texts)
    text = _printable(body)
    if text and "json" not in content_type:
        return f"{status_text} ({text})"
    return status_text


def error_from_response(resp: requests.Response, action: str, *, login_hint: str) -> RegistryError:
    """The exception for a failed response: ``action`` reads like ``registry H refused push of R``."""
    status = resp.status_code
    body = read_error_body(resp)
    detail = with_status(describe_error_body(body, resp.headers.get("Content-Type", ""), status), status)
    codes = tuple(code for code, _ in parse_error_codes(body))
    message = f"{action}: {detail}"
    if status in (401, 403):
        return RegistryAuthError(f"{message}. {login_hint}")
    if status == 404:
        return RegistryNotFoundError(message)
    if status == 400 and b"HTTP request to an HTTPS server" in body:
        return RegistryHTTPError(f"{message}; the registry speaks HTTPS: drop --plain-http", status, codes)
    return RegistryHTTPError(message, status, codes)


def with_status(detail: str, status: int) -> str:
    """Name the HTTP status in every error: ``503 Service Unavailable``, ``blob_unknown: … (404 Not Found)``."""
    text = _status_text(status)
    if detail == text:
        return f"{status} {text}"
    if detail.startswith(text + " ("):
        return f"{status} {detail}"
    return f"{detail} ({status} {text})"


def is_connection_refused(exc: BaseException) -> bool:
    """True when nothing listens on the port (fail fast instead of backing off for minutes)."""
    for e in _chain(exc):
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED:
            return True
        if "Connection refused" in str(e) or "[Errno 111]" in str(e):
            return True
    return False


def is_http_answer_to_tls(exc: BaseException) -> bool:
    """An HTTPS handshake that got plain HTTP back (OpenSSL's wording varies by version)."""
    markers = ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure", "packet length too long",
               "http request")
    return any(isinstance(e, (ssl.SSLError, requests.exceptions.SSLError)) and any(m in str(e) for m in markers)
               for e in _chain(exc))


def describe_transport_error(exc: BaseException, registry: str, *, plain_http: bool) -> str:
    """A short, secret-free reason for a request that got no HTTP answer."""
    if is_connection_refused(exc):
        scheme = "http" if plain_http else "https"
        return f"connection refused by {registry} ({scheme}): is the registry running and the address right?"
    if is_http_answer_to_tls(exc):
        return (f"{registry} answered plain HTTP to an HTTPS request: if it is an HTTP-only registry use "
                "--plain-http (plain_http=True)")
    if isinstance(exc, requests.exceptions.SSLError):
        if any("CERTIFICATE_VERIFY_FAILED" in str(e) for e in _chain(exc)):
            return (f"TLS certificate of {registry} could not be verified: trust its CA with --tls-cert FILE "
                    "(ca_cert= in the API) or, for a test registry only, --tls-verify=false")
        return f"TLS handshake with {registry} failed"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"connecting to {registry} timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"{registry} stopped answering (read timed out)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"connection to {registry} broke off mid-response"
    for e in _chain(exc):
        if "Name or service not known" in str(e) or "nodename nor servname" in str(e) or "getaddrinfo" in str(e):
            return f"cannot resolve the registry host {registry}"
    if any(isinstance(e, (ConnectionResetError, BrokenPipeError)) for e in _chain(exc)):
        return f"connection to {registry} was reset"
    return f"connection to {registry} failed ({type(exc).__name__})"


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its causes/contexts and urllib3's ``reason`` objects (requests nests them in args)."""
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or any(e is s for s in seen) or len(seen) > 20:
            continue
        seen.append(e)
        todo.extend([e.__cause__, e.__context__, getattr(e, "reason", None), *e.args])
    return seen


def _status_text(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def _printable(body: bytes, limit: int = 200) -> str:
    text = _UNPRINTABLE.sub(" ", body.decode("utf-8", "replace")).strip()
    return text[:limit] + ("…" if len(text) > limit else "")

""".kitignore matching: dockerignore syntax exactly as kit evaluates it (spec §6.1).

kit reads ``.kitignore`` with moby's ``ignorefile.ReadAll``, appends the always-ignored
``Kitfile``, ``kitfile``, ``.kitfile`` and ``.kitignore`` (root-relative, so ``sub/Kitfile`` is
packed), builds a ``patternmatcher.PatternMatcher`` and asks ``MatchesOrParentMatches`` for every
walked path. This module reimplements those rules:

- patterns: whitespace-trimmed, ``filepath.Clean``-ed, leading ``/`` dropped, ``#`` comment lines
  and blank lines skipped, a UTF-8 BOM on the first line removed;
- ``!pattern`` re-includes what earlier patterns excluded; the last matching pattern wins;
- ``*`` and ``?`` never cross ``/``; ``**`` matches any number of directories (also none);
  ``[...]`` classes and ``\\`` escapes as in Go's ``filepath.Match``;
- a path is ignored when it, or any of its parent directories, matches.

    >>> rules = IgnoreRules.from_patterns(["*.tmp", "data/**", "!data/keep.csv"])
    >>> rules.matches("a.tmp"), rules.matches("sub/a.tmp"), rules.matches("data/x/y.csv")
    (True, False, True)
    >>> rules.matches("data/keep.csv"), rules.matches("Kitfile"), rules.matches("sub/Kitfile")
    (False, True, False)
    >>> rules.has_exclusions
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from .errors import PackError
from .kitfile import clean_path

IGNORE_FILE = ".kitignore"
#: kit appends these to every pattern list (``constants.DefaultKitfileNames()`` + the ignore file).
ALWAYS_IGNORED = ("Kitfile", "kitfile", ".kitfile", ".kitignore")

# Go's unicode.IsSpace set, which strings.TrimSpace uses (str.strip() also strips \x1c-\x1f).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
            "\u2028\u2029\u202f\u205f\u3000"
# patternmatcher's shouldEscape set: regexp metacharacters that mean nothing to filepath.Match.
_REGEX_ONLY_META = frozenset(".+()|{}$")
# What Go's regexp makes of the escapes patternmatcher lets through (``\d``, ``\n``...).
_GO_ESCAPES = {
    "d": "[0-9]", "D": "[^0-9]", "w": "[0-9A-Za-z_]", "W": "[^0-9A-Za-z_]",
    "s": "[\t\n\f\r ]", "S": "[^\t\n\f\r ]", "b": r"\b", "B": r"\B", "A": r"\A", "z": r"(?=/|\Z)",
    "a": "\x07", "f": "\f", "t": "\t", "n": "\n", "r": "\r", "v": "\v",
}


def go_trim_space(s: str) -> str:
    """Go's ``strings.TrimSpace``."""
    return s.strip(_GO_SPACE)


class _Kind(Enum):
    EXACT = 1
    PREFIX = 2
    SUFFIX = 3
    REGEX = 4


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern (``text`` is the cleaned pattern without its ``!``)."""

    text: str
    exclusion: bool
    kind: _Kind
    regex: re.Pattern[str] | None = None
    any_prefix_regex: re.Pattern[str] | None = None

    def match(self, path: str) -> bool:
        """patternmatcher's ``Pattern.match`` on one path (no parent handling)."""
        if self.kind is _Kind.EXACT:
            return path == self.text
        if self.kind is _Kind.PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind is _Kind.SUFFIX:
            suffix = self.text[2:]
            # "**/foo" also matches "foo" itself
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None

    def match_or_parent(self, path: str) -> bool:
        """The path or one of its parent directories matches (``MatchesOrParentMatches``' inner test)."""
        if self.kind is _Kind.EXACT:
            # a parent equals the text exactly when the path continues after "text/"
            return path == self.text or path.startswith(self.text + "/")
        if self.kind is _Kind.PREFIX:
            return self.match(path)  # a parent with the prefix means the path has it too
        if self.kind is _Kind.SUFFIX:
            if self.match(path):
                return True
            i = path.find("/")
            while i > 0:
                if self.match(path[:i]):
                    return True
                i = path.find("/", i + 1)
            return False
        assert self.any_prefix_regex is not None
        # one regex run: the pattern matches the path up to a "/" or the end
        return self.any_prefix_regex.match(path) is not None


@dataclass(frozen=True)
class _Group:
    """A run of consecutive patterns of the same polarity.

    Go evaluates inclusions only while the path is not ignored and stops at the first hit (and
    the reverse for exclusions), so a run of same-polarity patterns acts as "any of them
    matches". That lets exact names share one set, prefixes one ``startswith`` call and
    regexes one alternation.
    """

    exclusion: bool
    exact: frozenset[str]
    prefixes: tuple[str, ...]
    regex: re.Pattern[str] | None
    suffixes: tuple[Pattern, ...]

    @classmethod
    def of(cls, patterns: list[Pattern]) -> _Group:
        regexes = [p.regex.pattern[: -len(r"\Z")] for p in patterns if p.kind is _Kind.REGEX and p.regex]
        combined = re.compile("(?:" + "|".join(f"(?:{r})" for r in regexes) + r")(?:/|\Z)") if regexes else None
        return cls(
            patterns[0].exclusion,
            frozenset(p.text for p in patterns if p.kind is _Kind.EXACT),
            tuple(p.text[:-2] for p in patterns if p.kind is _Kind.PREFIX),
            combined,
            tuple(p for p in patterns if p.kind is _Kind.SUFFIX),
        )

    def hits(self, path: str, parent_missed: bool = False) -> bool:
        exact = self.exact
        if exact:
            if path in exact:
                return True
            i = -1 if parent_missed else path.find("/")
            while i > 0:
                if path[:i] in exact:
                    return True
                i = path.find("/", i + 1)
        if self.prefixes and path.startswith(self.prefixes):
            return True
        if self.regex is not None and self.regex.match(path) is not None:
            return True
        return any(p.match_or_parent(path) for p in self.suffixes)


@dataclass(frozen=True)
class IgnoreRules:
    """The patterns of a context's ``.kitignore`` plus kit's always-ignored names.

    Build with :meth:`from_context` (reads ``<context>/.kitignore`` if present) or
    :meth:`from_patterns`. :meth:`matches` takes a path relative to the context directory,
    ``/``-separated.
    """

    patterns: tuple[Pattern, ...]
    has_exclusions: bool
    _groups: tuple[_Group, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_context(cls, context_dir: Path | str) -> IgnoreRules:
        """Rules for a context directory: its ``.kitignore`` (optional) + the always-ignored names."""
        path = Path(context_dir) / IGNORE_FILE
        try:
            with open(path, "rb") as f:
                lines = read_ignore_file(f.read().split(b"\n"))
        except FileNotFoundError:
            lines = []
        except OSError as e:
            raise PackError(f"failed to open {IGNORE_FILE} file {path}: {e.strerror}") from None
        return cls.from_patterns(lines, source=str(path))

    @classmethod
    def from_patterns(cls, patterns: Iterable[str], source: str = IGNORE_FILE) -> IgnoreRules:
        """Rules from pattern strings (as ``patternmatcher.New`` takes them) + the always-ignored names."""
        compiled: list[Pattern] = []
        for raw in [*patterns, *ALWAYS_IGNORED]:
            p = go_trim_space(raw)
            if not p:
                continue
            p = clean_path(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise PackError(f'invalid {source} file: illegal exclusion pattern: "!"; remove the lone "!" line')
                p = p[1:]
            compiled.append(_compile(p, exclusion, source))
        runs: list[list[Pattern]] = []
        for pattern in compiled:
            if runs and runs[-1][0].exclusion == pattern.exclusion:
                runs[-1].append(pattern)
            else:
                runs.append([pattern])
        groups = tuple(_Group.of(run) for run in runs)
        return cls(tuple(compiled), any(p.exclusion for p in compiled), groups)

    def matches(self, relpath: str) -> bool:
        """True if ``relpath`` (relative to the context, ``/``-separated) or a parent is ignored.

        Like kit, the path is first trimmed of surrounding whitespace and cleaned.
        """
        return self.matches_clean(relpath if _is_clean(relpath) else clean_path(go_trim_space(relpath)))

    def matches_clean(self, path: str) -> bool:
        """:meth:`matches` for a path with no ``.``/``..`` components, ``//`` or outer ``/`` (what the layer
        walk produces): only the whitespace trim is still checked, skipping the rest of the cleaning."""
        if path and (path[0] in _GO_SPACE or path[-1] in _GO_SPACE):
            path = clean_path(go_trim_space(path))
        matched = False
        for group in self._groups:
            # An inclusion cannot change an already-ignored path, nor an exclusion a kept one.
            if group.exclusion != matched:
                continue
            if group.hits(path):
                matched = not group.exclusion
        return matched

    def matches_walked(self, path: str) -> bool:
        """:meth:`matches_clean` for a walked path whose parent directory did not match.

        Without ``!`` rules an ignored directory is pruned, so the walk only asks about children of
        directories that matched nothing: exact names then need no check against each ancestor.
        """
        if self.has_exclusions or (path and (path[0] in _GO_SPACE or path[-1] in _GO_SPACE)):
            return self.matches_clean(path)
        for group in self._groups:  # all inclusions: the first hit decides
            if group.hits(path, True):
                return True
        return False


def _is_clean(p: str) -> bool:
    """Cheap check that trimming and cleaning would not change ``p`` (true for walked paths)."""
    return bool(p) and p[0] not in _GO_SPACE and p[-1] not in _GO_SPACE and p[-1] != "/" and p[0] != "/" \
        and "//" not in p and not _UNCLEAN.search(p)


_UNCLEAN = re.compile(r"(?:^|/)\.\.?(?:/|$)")


def read_ignore_file(lines: Iterable[bytes]) -> list[str]:
    """moby ``ignorefile.ReadAll`` over the raw lines of an ignore file.

    >>> read_ignore_file([b"# comment", b" /models/*.bin ", b"! ./keep.bin", b""])
    ['models/*.bin', '!keep.bin']
    """
    out: list[str] = []
    for i, raw in enumerate(lines):
        if i == 0 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if raw.endswith(b"\r"):  # bufio.ScanLines drops a trailing \r
            raw = raw[:-1]
        line = raw.decode("utf-8", "surrogateescape")
        if line.startswith("#"):
            continue
        line = go_trim_space(line)
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = go_trim_space(line[1:])
        if line:
            line = clean_path(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        out.append("!" + line if invert else line)
    return out


def _compile(text: str, exclusion: bool, source: str) -> Pattern:
    try:
        _check_go_match_syntax(text)
        kind, body = _translate(text)
        regex = any_prefix = None
        if body is not None:
            regex = re.compile(body + r"\Z")  # Go's "$" without multi-line mode: end of text only
            any_prefix = re.compile(body + r"(?:/|\Z)")
    except _BadPattern as e:
        raise PackError(f"invalid {source} file: syntax error in pattern {text!r}: {e}") from None
    except re.error as e:
        raise PackError(f"invalid {source} file: syntax error in pattern {text!r}: {e}") from None
    return Pattern(text, exclusion, kind, regex, any_prefix)


class _BadPattern(ValueError):
    pass


def _check_go_match_syntax(pattern: str) -> None:
    """Reject what Go's ``filepath.Match`` reports as ``ErrBadPattern`` (kit fails the pack then)."""
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise _BadPattern("trailing backslash")
            i += 2
        elif c == "[":
            i = _scan_class(pattern, i + 1)
        else:
            i += 1


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """Go's ``getEsc``: one (possibly escaped) class character; the class must continue after it."""
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise _BadPattern("malformed character class")
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise _BadPattern("malformed character class")
    if i + 1 >= n:
        raise _BadPattern("unterminated character class")
    return pattern[i], i + 1


def _scan_class(pattern: str, i: int) -> int:
    """Parse a class body starting after ``[``; return the index after its ``]``."""
    _, i, _ = _parse_class(pattern, i)
    return i


def _parse_class(pattern: str, i: int) -> tuple[list[tuple[str, str]], int, bool]:
    negated = i < len(pattern) and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[tuple[str, str]] = []
    while True:
        if i < len(pattern) and pattern[i] == "]" and ranges:
            return ranges, i + 1, negated
        lo, i = _class_char(pattern, i)
        hi = lo
        if pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
        ranges.append((lo, hi))


def _translate(pattern: str) -> tuple[_Kind, str | None]:
    """patternmatcher's ``compile``: the match kind and, for REGEX, the Python regex (unanchored at the end).

    The scan mirrors moby's: ``**`` first -> suffix match, a trailing ``**`` with nothing special
    before it -> prefix match, no special character at all -> exact match.
    """
    kind = _Kind.EXACT
    out = ["^"]
    i, n, token = 0, len(pattern), 0
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:  # "**" at the end matches everything below
                    if kind is _Kind.EXACT:
                        kind = _Kind.PREFIX
                    else:
                        out.append(".*")
                        kind = _Kind.REGEX
                else:
                    out.append("(?:.*/)?")
                    kind = _Kind.REGEX
                if token == 0:
                    kind = _Kind.SUFFIX
            else:
                out.append("[^/]*")
                kind = _Kind.REGEX
        elif c == "?":
            out.append("[^/]")
            kind = _Kind.REGEX
        elif c in _REGEX_ONLY_META:
            out.append(re.escape(c))
        elif c == "\\":
            if i < n:
                esc = pattern[i]
                i += 1
                out.append(_go_escape(esc))
                kind = _Kind.REGEX
            else:
                out.append(r"\\")
        elif c == "[":
            ranges, i, negated = _parse_class(pattern, i)
            body = "".join(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in ranges)
            out.append(f"[{'^' if negated else ''}{body}]")
            kind = _Kind.REGEX
        elif c == "]":
            out.append(r"\]")
            kind = _Kind.REGEX
        else:
            out.append(c if c == "^" else re.escape(c))
        token += 1
    if kind is not _Kind.REGEX:
        return kind, None
    return kind, "".join(out)


def _go_escape(c: str) -> str:
    if c.isascii() and c.isalnum():
        if c in _GO_ESCAPES:
            return _GO_ESCAPES[c]
        raise _BadPattern(f"escape sequence \\{c} is not supported")
    return re.escape(c)


__all__ = ["IgnoreRules", "Pattern", "read_ignore_file", "go_trim_space", "ALWAYS_IGNORED", "IGNORE_FILE"]

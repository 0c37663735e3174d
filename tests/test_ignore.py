""".kitignore rules: moby/patternmatcher + ignorefile.ReadAll semantics, kit's always-ignored names."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitops_flows.errors import PackError
from kitops_flows.ignore import IgnoreRules, go_trim_space, read_ignore_file


def rules(*patterns: str) -> IgnoreRules:
    return IgnoreRules.from_patterns(patterns)


# --- ReadAll ------------------------------------------------------------------------------------------

def test_read_all_rules() -> None:
    lines = [
        b"\xef\xbb\xbf# a comment after a BOM",
        b"  *.tmp  ",
        b"/abs/path",
        b"./rel/../other//x/",
        b"",
        b"   ",
        b" # not a comment: leading space",
        b"!  keep.tmp",
        b"! /rooted/keep",
        b"crlf\r",
        b"!",
        b"/",
    ]
    assert read_ignore_file(lines) == [
        "*.tmp", "abs/path", "other/x", "# not a comment: leading space", "!keep.tmp", "!rooted/keep",
        "crlf", "!", "/",
    ]


def test_from_context_reads_kitignore(tmp_path: Path) -> None:
    (tmp_path / ".kitignore").write_bytes(b"# models are big\n/models/*.bin\n!models/keep.bin\n")
    r = IgnoreRules.from_context(tmp_path)
    assert r.has_exclusions
    assert r.matches("models/a.bin")
    assert not r.matches("models/keep.bin")
    assert not r.matches("other/models/a.bin")  # leading "/" anchors nothing extra: patterns are root-relative


def test_from_context_without_kitignore(tmp_path: Path) -> None:
    r = IgnoreRules.from_context(tmp_path)
    assert not r.has_exclusions
    assert [r.matches(p) for p in ("Kitfile", "kitfile", ".kitfile", ".kitignore", "KITFILE", "a.txt")] == [
        True, True, True, True, False, False,
    ]


def test_always_ignored_names_are_root_relative() -> None:
    r = rules()
    assert r.matches("Kitfile")
    assert not r.matches("sub/Kitfile")
    assert not r.matches("sub/.kitignore")


def test_lone_exclamation_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".kitignore").write_text("data\n!\n")
    with pytest.raises(PackError, match='illegal exclusion pattern: "!"'):
        IgnoreRules.from_context(tmp_path)


@pytest.mark.parametrize("bad", ["[", "a[b", "x\\", "[]", "[a-]", "[-a]", "[^]", "a[b-"])
def test_malformed_patterns_fail_like_filepath_match(bad: str) -> None:
    with pytest.raises(PackError, match="syntax error in pattern"):
        rules(bad)


# --- matching -------------------------------------------------------------------------------------

MATCH_TABLE = [
    # pattern, path, expected
    ("*.bin", "a.bin", True),
    ("*.bin", "dir/a.bin", False),            # "*" does not cross "/"
    ("*/*.bin", "dir/a.bin", True),
    ("dir", "dir/sub/file", True),            # parent matches
    ("dir/sub", "dir/sub/file", True),
    ("dir/sub", "dir/subway", False),
    ("di?", "dir", True),
    ("di?", "di/", False),
    ("**/*.bin", "a.bin", True),               # ** also matches no directory
    ("**/*.bin", "x/y/z/a.bin", True),
    ("**/cache", "cache", True),               # suffix match: "**/foo" matches "foo"
    ("**/cache", "a/b/cache", True),
    ("**/cache", "a/b/mycache", False),
    ("**cache", "a/b/mycache", True),          # no slash: plain suffix
    ("data/**", "data/x/y", True),             # prefix match
    ("data/**", "data", False),
    ("data**", "data-v2/file", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/x/y/bc", False),
    ("a/**", "a/b", True),
    ("x/**/*.tmp", "x/1/2/3.tmp", True),
    ("[abc].txt", "b.txt", True),
    ("[abc].txt", "d.txt", False),
    ("[^abc].txt", "d.txt", True),
    ("[a-c]x", "bx", True),
    ("[a-c]x", "dx", False),
    ("\\*.txt", "*.txt", True),
    ("\\*.txt", "a.txt", False),
    ("a.b", "axb", False),                     # "." is literal
    ("a+b", "a+b", True),
    ("(x)", "(x)", True),
    ("{a,b}", "a", False),                     # no brace expansion
    ("{a,b}", "{a,b}", True),
    ("$x", "$x", True),
    ("*.txt", "a\nb.txt", True),               # Go's [^/] also matches a newline
    ("*.txt", "a.txt\n", True),                # kit trims the path (strings.TrimSpace) first
    ("./a/../b", "b", True),                   # cleaned pattern
    ("/rooted", "rooted", False),              # from_patterns keeps "/" (ReadAll strips it)
    ("dir/", "dir/file", True),
    ("ü*", "über", True),
    ("?", "ü", True),                          # one character, not one byte
]


@pytest.mark.parametrize(("pattern", "path", "expected"), MATCH_TABLE)
def test_matching(pattern: str, path: str, expected: bool) -> None:
    assert rules(pattern).matches(path) is expected


def test_exclusions_last_match_wins() -> None:
    r = rules("logs", "!logs/keep.log", "logs/keep.log")
    assert r.matches("logs/keep.log")
    r = rules("*.log", "!important.log")
    assert r.matches("a.log") and not r.matches("important.log")
    r = rules("!a.log", "*.log")  # exclusion before the inclusion has no effect
    assert r.matches("a.log")


def test_exclusion_of_parent_reincludes_children() -> None:
    r = rules("data", "!data/keep")
    assert r.matches("data")
    assert not r.matches("data/keep")
    assert not r.matches("data/keep/deeper.csv")  # its parent data/keep is re-included
    assert r.matches("data/other.csv")
    assert r.has_exclusions


def test_paths_are_trimmed_and_cleaned_like_kit() -> None:
    r = rules("a/b")
    assert r.matches("./a/b")
    assert r.matches("a//b/")
    assert r.matches(" a/b ")
    assert not r.matches("\x1ca/b")  # Go's TrimSpace keeps ASCII separators Python calls whitespace


def test_go_trim_space() -> None:
    assert go_trim_space("\u00a0 x \u3000\t") == "x"
    assert go_trim_space("\x1fx\x1f") == "\x1fx\x1f"


segment = st.text(alphabet="abc.-_", min_size=1, max_size=5).filter(lambda s: s not in (".", ".."))


@given(st.lists(segment, min_size=1, max_size=4), segment)
def test_star_never_crosses_a_slash(dirs: list[str], name: str) -> None:
    path = "/".join([*dirs, name])
    depth = len(dirs)
    # "*/" repeated exactly depth times, then "*", matches only paths of that depth (or their children)
    pattern = "/".join(["*"] * (depth + 1))
    assert rules(pattern).matches(path)
    if depth > 0:
        assert rules("*").matches(path)            # through the parent "dirs[0]"
        assert not rules(f"{dirs[0]}*{name}").matches(path)


@given(st.lists(segment, min_size=1, max_size=4))
def test_literal_pattern_matches_itself_and_children(parts: list[str]) -> None:
    path = "/".join(parts)
    r = rules(path)
    assert r.matches(path)
    assert r.matches(path + "/child")
    assert not r.matches(path + "x")

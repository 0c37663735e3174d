"""Small formatting helpers that reproduce kit's terminal output byte for byte.

>>> format_bytes(10), format_bytes(1536), format_bytes(5 << 40)
('10 B', '1.5 KiB', '5.0 TiB')
>>> short_digest("sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9")
'sha256:0a1b2c3d4e'
"""

from __future__ import annotations

_UNITS = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def format_bytes(n: int) -> str:
    """kit's ``output.FormatBytes``: ``N B`` below 1 KiB, else one decimal, rounded down, in the largest unit."""
    for unit, scale in _UNITS:
        if n >= scale:
            return f"{n * 10 // scale / 10:.1f} {unit}"
    return f"{n} B"


def short_digest(digest: str) -> str:
    """kit cuts digests to 17 characters (``sha256:`` plus 10 hex) in tables."""
    return digest[:17]

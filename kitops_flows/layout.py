"""Names of kit's on-disk files in ``$KITOPS_HOME/storage`` (shared by the store and the index store).

>>> repo_file_stem("localhost/team/churn")
'bG9jYWxob3N0L3RlYW0vY2h1cm4='
"""

from __future__ import annotations

import base64

__all__ = ["repo_file_stem"]


def repo_file_stem(repo_path: str) -> str:
    """kit names per-repository files by URL-safe base64 (with padding) of ``registry/repository``."""
    return base64.urlsafe_b64encode(repo_path.encode()).decode()

"""Where the tests find files outside the repository: the shared folder beside it (``../shared``)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: raw reference tables and large X12 samples, kept beside the repository (not in it)
SHARED = REPO.parent / "shared"


def shared_path(relative: str) -> Path:
    """``SHARED / relative``; skips the calling test, with the reason, when there is no shared folder.
    With the folder present, a missing file is a failure of the test, not a skip."""
    if not SHARED.is_dir():
        pytest.skip(f"no shared folder beside the repository ({SHARED}): it holds {relative}")
    return SHARED / relative

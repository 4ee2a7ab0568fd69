"""Where the tests find their data, and how a test says it cannot run here.

Two places, one rule each:

- ``tests/data/`` (this folder) ships with the repository: the photos, crops and clip most tests
  need (see NOTICE.md). ``data(REL)`` returns a path in it; a missing file is a broken checkout,
  so it fails the test.
- ``../shared`` beside the checkout (``$FACEGATE_SHARED`` overrides it) is optional: every
  identity for accuracy, the 1080p street clip, the deepface set, training data. ``shared(REL)``
  returns a path in it, or skips with one reason: optional data is never a failure.

A test that needs a program says so with ``needs_tool``: its skip reason starts with
``MISSING_TOOL``, and under ``FACEGATE_STRICT=1`` (scripts/test.sh) such a skip is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent
REPO = DATA.parents[1]
SHARED = Path(os.environ.get("FACEGATE_SHARED") or REPO.parent / "shared")

OPTIONAL_DATA = "optional data:"
MISSING_TOOL = "missing tool:"
NO_SHARED = (
    f"{OPTIONAL_DATA} {SHARED} is not present (it holds every identity, the street clip,"
    " the deepface set; set FACEGATE_SHARED to use another copy)"
)


def data(rel: str) -> Path:
    """``tests/data/REL``, which the repository ships; fails the test when it is missing."""
    path = DATA / rel
    if not path.exists():
        pytest.fail(f"{path} is missing: tests/data is part of the checkout")
    return path


def shared(rel: str = "") -> Path:
    """``../shared/REL``, or skip the test: the larger data sets are optional."""
    if not SHARED.is_dir():
        pytest.skip(NO_SHARED)
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"{OPTIONAL_DATA} {path} is not present")
    return path


def has_shared() -> bool:
    """Whether ``../shared`` is beside this checkout."""
    return SHARED.is_dir()


def needs_tool(name: str, found: object = None, hint: str = "") -> None:
    """Skip when the program ``name`` is missing (``found`` falsy after a PATH lookup)."""
    if found is None:
        found = shutil.which(name)
    if not found:
        reason = f"{MISSING_TOOL} {name} is not installed"
        pytest.skip(f"{reason} ({hint})" if hint else reason)


def is_missing_tool(reason: str) -> bool:
    """Whether a skip reason is a missing program (strict mode fails those)."""
    # "not installed" is how tests written before needs_tool() word the same thing.
    return reason.startswith(MISSING_TOOL) or "not installed" in reason

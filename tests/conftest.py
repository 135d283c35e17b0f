"""Fixtures shared by the unit tests."""
from __future__ import annotations

import pytest

from coursekit.docker import engine


@pytest.fixture(scope="module")
def real_engine():
    """The real Docker engine; fails (not skips) without one, and removes what the module started."""
    if not engine.available():
        pytest.fail(f"these tests need the Docker engine: {engine.status().reason}")
    yield engine
    engine.cleanup()

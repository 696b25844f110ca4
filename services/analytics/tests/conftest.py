"""Tests of the analytics service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def default_structlog() -> Iterator[None]:
    """Start from structlog's defaults: a CLI run in-process by an earlier test (`iioe simulate`)
    configures it to write to that test's captured stderr, closed by now, and caches loggers."""
    structlog.reset_defaults()
    yield

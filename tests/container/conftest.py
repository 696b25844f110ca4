"""Container tests: the platform image, run the way production runs it.

They need a Docker engine and the image (`make image`), and run only through
`make container-test` (deploy/scripts/container-test.sh starts what they need and says why it
skips where Docker cannot run). Nothing is pulled: testcontainers' reaper (Ryuk) is off and
the image must exist locally.
"""

from __future__ import annotations

import os

import pytest

IMAGE = os.environ.get("IIOE_IMAGE", "iioe-platform:local")


def _engine_answers() -> bool:
    import docker

    try:
        return bool(docker.from_env(timeout=10).ping())
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    # Only the tests that drive Docker; test_k8s_manifests.py runs everywhere.
    ours = [item for item in items if str(item.path).startswith(os.path.join(here, "test_platform_image"))]
    if not ours:
        return
    reason = None
    if os.environ.get("IIOE_CONTAINER_TESTS") != "1":
        reason = "container tests run with `make container-test` (needs Docker and the image)"
    elif not _engine_answers():
        reason = "no Docker engine answers"
    if reason:
        for item in ours:
            item.add_marker(pytest.mark.skip(reason=reason))

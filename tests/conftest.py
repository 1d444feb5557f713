"""Shared fixtures: a fresh local cloud per test, reached by the real SDKs over each transport."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from localcloud import LocalCloud, Scenario
from localcloud.testing import TRANSPORTS, CloudEnv, running

# The SDK honours proxy env vars; tests talk to loopback or to nothing at all.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
    os.environ.pop(_var, None)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Every test that uses it runs twice: in-process (responses) and over real loopback HTTP."""
    return request.param


@pytest.fixture
def make_env(transport: str) -> Iterator[Callable[..., CloudEnv]]:
    """make_env(scenario_mapping) → CloudEnv with a fresh LocalCloud and SDK clients for it."""
    with ExitStack() as stack:

        def make(scenario: dict[str, Any] | None = None) -> CloudEnv:
            cloud = LocalCloud(Scenario.from_mapping(scenario or {}))
            stack.callback(cloud.close)
            return stack.enter_context(running(cloud, transport))

        yield make

"""DeployError: what ends a deploy or destroy that cannot go on."""

from __future__ import annotations

from bakery_tools.exits import Refused


class DeployError(Refused):
    """Deploy or destroy cannot go on: `exit_code` (1 refused/failed, 2 bad input), a stable `reason`, and a
    message that says what to do next."""

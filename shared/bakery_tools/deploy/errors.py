"""DeployError: what ends a deploy or destroy that cannot go on."""

from __future__ import annotations


class DeployError(Exception):
    """Deploy or destroy cannot go on: `exit_code` (1 refused/failed, 2 bad input), a stable `reason`, and a
    message that says what to do next."""

    def __init__(self, exit_code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.reason = reason
        self.message = message

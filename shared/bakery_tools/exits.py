"""Exit codes every `bakery` command returns (one place, so command modules need not import each other)."""

EXIT_OK = 0  # done
EXIT_PROBLEM = 1  # refused or failed: a safety promise broken, a bake unfinished, the cloud said no or is unreachable
EXIT_USAGE = 2  # bad input: an unknown id, a missing setting, an invalid template or option


class Refused(Exception):
    """A command cannot do what was asked: `exit_code` (1 refused, 2 bad input), a stable `reason`, and a
    message that says what to do next."""

    def __init__(self, exit_code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.reason = reason
        self.message = message

"""Exit codes every `bakery` command returns (one place, so command modules need not import each other)."""

EXIT_OK = 0  # done
EXIT_PROBLEM = 1  # refused or failed: a safety promise broken, a bake unfinished, the cloud said no or is unreachable
EXIT_USAGE = 2  # bad input: an unknown id, a missing setting, an invalid template or option

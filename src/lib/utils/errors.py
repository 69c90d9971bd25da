"""One-line user errors for the command-line entry points."""
from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem with the user's input (a path, an option): reported as one line, no traceback."""


def run_cli(main_fn: Callable[[], object]) -> None:
    """Run an entry point; turn a UserError into `error: <message>` on stderr and exit code 2."""
    try:
        main_fn()
    except UserError as e:
        sys.stdout.flush()
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stdout.flush()
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)

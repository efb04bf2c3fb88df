"""Progress goes to stderr, results to stdout, so `disa` output can be piped."""

import sys


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

"""The `disa` command run in-process, as a user runs it: exit code, stdout and stderr."""

from __future__ import annotations

from disa import cli


def disa(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(args))
    except SystemExit as exit_:  # argparse's refusals
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err

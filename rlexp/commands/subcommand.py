"""What `rlexp eval`, `rlexp plot` and `rlexp export` do alike around their work: `--help`, and the outcome as
stdout, stderr and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable

from rlexp.errors import ConfigError, OutputLost, RunFailure

#: A command's work: (its arguments, a function that takes a warning) -> the report for stdout.
Work = Callable[[list[str], Callable[[str], None]], str]


def run_subcommand(command: str, usage: str, args: list[str], work: Work) -> int:
    """`rlexp <command> args`: `usage` for -h or --help; else `work`'s report on stdout, after its warnings on
    stderr (`rlexp <command>: warning: ...`, only when it succeeds). A ConfigError is one line on stderr and exit
    2 (bad input), a RunFailure the same and exit 1; a message that already names the command (`rlexp plot needs
    matplotlib ...`) is printed as it is, any other as `rlexp <command>: error: <message>`."""
    if any(a in ("-h", "--help") for a in args):
        print(usage, end="")
        return 0
    warnings: list[str] = []
    try:
        report = work(args, warnings.append)
    except (ConfigError, RunFailure) as error:
        message = str(error)
        print(message if message.startswith(f"rlexp {command} ") else f"rlexp {command}: error: {message}",
              file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1
    for warning in warnings:
        print(f"rlexp {command}: warning: {warning}", file=sys.stderr)
    try:
        print(report, flush=True)
    except OutputLost as lost:
        raise OutputLost(f"{lost} (its report only: what it writes to files is written)") from None
    return 0

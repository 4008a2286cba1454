"""The `key=value` options of `rlexp eval` and `rlexp plot`, parsed one way for both.

A command declares its options as parsers (key -> a function of the text after `=`); anything else on its
command line is a path. Every mistake is a ConfigError naming the option and what it takes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rlexp.config.checks import check_seed
from rlexp.errors import ConfigError

Parser = Callable[[str, str], Any]   # (key, text) -> value, or a ConfigError


def is_option(arg: str) -> bool:
    """`key=value`, unless it names an existing path: a sweep's job directories have '=' in their names
    (`3_algo.lr=0.001,seed=1`)."""
    return "=" in arg and "/" not in arg.split("=", 1)[0] and not Path(arg).exists()


def parse(args: Sequence[str], parsers: dict[str, Parser], command: str) -> tuple[list[str], dict[str, Any]]:
    """(the paths, the options given) from a command line of paths and `key=value` options in any order."""
    paths = [a for a in args if not is_option(a)]
    options: dict[str, Any] = {}
    for arg in (a for a in args if is_option(a)):
        key, text = arg.split("=", 1)
        if key not in parsers:
            raise ConfigError(f"{key} is not an option of rlexp {command}; use {', '.join(parsers)} "
                              f"(rlexp {command} --help)")
        if key in options:
            raise ConfigError(f"{key} is given twice; give it once")
        options[key] = parsers[key](key, text)
    return paths, options


def positive_int(key: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{key}={text} must be a positive integer")
    return int(text)


def one_path(paths: Sequence[str], command: str) -> Path:
    """The one run directory or checkpoint file a command takes."""
    if len(paths) != 1:
        given = f", got {len(paths)}: {' '.join(paths)}" if paths else ""
        raise ConfigError(f"give one run directory or checkpoint file{given} (rlexp {command} --help)")
    return Path(paths[0])


def seed(key: str, text: str) -> int:
    if not text.lstrip("-").isdigit():
        raise ConfigError(f"{key}={text} must be an integer")
    check_seed(key, int(text))
    return int(text)


def boolean(key: str, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ConfigError(f"{key}={text} must be true or false")
    return text.lower() == "true"


def one_of(*choices: str) -> Parser:
    def choose(key: str, text: str) -> str:
        if text not in choices:
            raise ConfigError(f"{key}={text} must be {' or '.join(choices)}")
        return text
    return choose


def text(example: str) -> Parser:
    def non_empty(key: str, value: str) -> str:
        if not value:
            raise ConfigError(f"{key}= needs a value, e.g. {key}={example}")
        return value
    return non_empty

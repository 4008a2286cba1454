"""Hydra's errors, and those of the OS around it, as one line each: what `rlexp train` prints for them."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from rlexp.errors import ConfigError, RunFailure, one_line, pip_install

#: The Hydra plugins behind rlexp's extras: group -> option -> extra.
PLUGIN_EXTRAS = {
    "hydra/launcher": {"joblib": "sweep", "ray": "ray", "ray_aws": "ray", "submitit_slurm": "slurm",
                       "submitit_local": "slurm"},
}


def unknown_option(group: str, name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    hint = f"; did you mean {group}={close[0]}?" if close else ""
    return f"{group}={name} is not an option of the {group} group: choose from {', '.join(sorted(options))}{hint}"


def describe(error: Exception) -> tuple[int, str] | None:
    """(exit code, one-line message) for the errors a user causes or meets; None for a bug (show a traceback)."""
    from hydra.errors import CompactHydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(error, ConfigError):
        return 2, str(error)
    if isinstance(error, RunFailure):
        return 1, str(error)
    if isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file:
        group, _, name = error.missing_cfg_file.rpartition("/")
        if name in PLUGIN_EXTRAS.get(group, {}):
            return 2, f"{group}={name} comes with a Hydra plugin that is not installed: " \
                      f"{pip_install(PLUGIN_EXTRAS[group][name])}"

        return 2, unknown_option(group, name, error.options)
    if isinstance(error, OSError) and error.filename:  # Hydra creating the run or sweep directory, its log file
        reason = error.strerror or type(error).__name__
        return 2, f"cannot write to {error.filename}: {reason}; choose another directory (hydra.run.dir=..., " \
                  f"hydra.sweep.dir=...)"
    if isinstance(error, ValueError) and str(error).startswith("Only one of --run, --multirun"):
        return 2, f"{error} (to see a sweep's config, drop --multirun: `rlexp train --cfg hydra <overrides>`)"
    if isinstance(error, OverrideParseException):
        return 2, override_parse_error(error.override, error.message)
    if isinstance(error, (CompactHydraException, OmegaConfBaseException)):
        cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else None
        unknown = _unknown_key(cause, str(error)) if cause is not None else None
        if unknown:
            return 2, unknown
        head = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if head.startswith("Ambiguous value for argument"):   # (Hydra's next lines say what each reading needs)
            head += ": a list is key=[a,b], a string key='a,b', and a sweep over the values needs --multirun"
        detail = str(cause).strip().splitlines()[0] if cause is not None and str(cause).strip() else ""
        return 2, one_line(f"{head}: {detail}" if detail else head)
    return None


def override_parse_error(override: str, message: str) -> str:
    """Hydra's grammar error on one line: the override, what Hydra could not read in it and, for a character its
    unquoted values do not take (a non-ASCII letter, a space, a newline), the quoting that does. Hydra's message
    spreads this over three lines (`LexerNoViableAltException: <override>`, a caret under the character, a link)."""
    lexer = "LexerNoViableAltException: "
    lines = [line for line in message.splitlines() if line.strip() and not line.startswith("See https://")]
    caret = lines[-1] if lines and lines[-1].strip() == "^" else None
    if message.startswith(lexer) and caret is not None:
        at = caret.index("^") - len(lexer)
        key, _, value = override.partition("=")
        where = f"{override[at]!r} in it" if 0 <= at < len(override) else "a character in it"
        quotable = value.isprintable() and at > len(key) and '"' not in value
        fix = f"; quote the value: '{key}=\"{value}\"'" if quotable else ""
        return f"cannot parse the override {override!r}: Hydra's override grammar does not accept {where} " \
               f"(unquoted values take ASCII letters, digits and a few symbols){fix}"
    detail = next((line for line in reversed(lines) if not line.startswith("Error parsing override")), "")
    detail = re.sub(r" expecting \{.*\}$", "", detail)   # (the grammar's token names)
    return f"cannot parse the override {override!r}" + (f": {detail}" if detail else "") + \
        " (Hydra's override grammar: https://hydra.cc/docs/advanced/override_grammar/basic)"


def error_message(error: BaseException) -> str:
    """The one line results.json and the log give an error: `describe`'s, or (a bug) its type and text."""
    described = describe(error) if isinstance(error, Exception) else None
    return described[1] if described else one_line(f"{type(error).__name__}: {error}")


def _unknown_key(cause: Exception, message: str) -> str | None:
    """`algo.lrr is not a config key; did you mean algo.lr?` for OmegaConf's struct-mode key errors."""
    import dataclasses

    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    full_key = getattr(cause, "full_key", None)
    if not isinstance(cause, (ConfigKeyError, ConfigAttributeError)) or not full_key:
        return None
    parent, _, key = str(full_key).rpartition(".")
    object_type = getattr(cause, "object_type", None)
    if not dataclasses.is_dataclass(object_type):  # a free-form dict such as env.kwargs: keys are added with +
        append = next((line.strip() for line in message.splitlines() if line.startswith("To append")), "")
        return f"{full_key} is not set yet" + (f"; {append[0].lower()}{append[1:]}" if append else "")
    known = [f.name for f in dataclasses.fields(object_type)]
    close = difflib.get_close_matches(key, known, n=2)
    where = f"{parent}." if parent else ""
    hint = f"; did you mean {' or '.join(where + c for c in close)}?" if close else ""
    return f"{full_key} is not a config key{hint} (rlexp train --cfg job shows every key)"

"""The checks behind every one-line config error: a number in a range, a positive integer, a seed.

Every failure is a `ConfigError` whose message is one line naming the key, the value and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rlexp.errors import ConfigError

#: numpy's legacy seeding (np.random.seed), which rlexp calls, takes seeds in [0, 2**32).
SEED_LIMIT = 2**32

#: While `recording()` is on: {key: the values its check admits}, filled by the checks as they pass. The docs'
#: configuration reference reads its range column from here, so the range a page states is the one enforced.
_recorded: dict[str, str] | None = None


@contextmanager
def recording() -> Iterator[dict[str, str]]:
    """Record the range of every check made inside the block: {"algo.tau": "(0, 1]", ...}."""
    global _recorded
    before, _recorded = _recorded, {}
    try:
        yield _recorded
    finally:
        _recorded = before


def _record(key: str, admits: str) -> None:
    if _recorded is not None:
        _recorded.setdefault(key, admits)


def interval(low: float | None, high: float | None, low_inclusive: bool, high_inclusive: bool,
             number: Any = str) -> str:
    """The values a range check admits, `[low, high)` and the like (a missing bound: -inf or inf)."""
    return (f"{'[' if low_inclusive else '('}{'-inf' if low is None else number(low)}, "
            f"{'inf' if high is None else number(high)}{']' if high_inclusive else ')'}")


def check_range(key: str, value: float, low: float | None = None, high: float | None = None,
                *, low_inclusive: bool = True, high_inclusive: bool = True) -> None:
    """Raise a ConfigError unless low <= value <= high (bounds optional, exclusivity per side).

    NaN and infinity are refused everywhere: no setting means anything useful with them.
    """
    if low is not None or high is not None:   # (the docs' form: 0 and 1, where the message keeps 0.0 and 1.0)
        _record(key, interval(low, high, low_inclusive, high_inclusive, lambda bound: f"{bound:g}"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={value!r} must be a number")
    if not math.isfinite(value):
        raise ConfigError(f"{key}={value!r} must be a finite number")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        raise ConfigError(f"{key}={value!r} is outside {interval(low, high, low_inclusive, high_inclusive)}")


def check_positive_int(key: str, value: int, *, allow_zero: bool = False, limit: int | None = None) -> None:
    """A positive (or non-negative) integer, below `limit` when one is given."""
    _record(key, f"integer >= {0 if allow_zero else 1}" + (f", < {limit:,}" if limit is not None else ""))
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        need = "a non-negative integer" if allow_zero else "a positive integer"
        raise ConfigError(f"{key}={value!r} must be {need}")
    if limit is not None and value >= limit:
        raise ConfigError(f"{key}={value} must be below {limit:,}")


def check_seed(key: str, seed: int, offset: int = 0) -> None:
    """A seed numpy, torch and gymnasium all accept, for every seed derived from it (seed + offset: the
    evaluation seed, one per env)."""
    _record(key, f"[0, {SEED_LIMIT - offset - 1}]")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"{key}={seed!r} must be an integer")
    if not 0 <= seed < SEED_LIMIT - offset:
        raise ConfigError(f"{key}={seed} is outside [0, {SEED_LIMIT - offset - 1}]: numpy's seeds lie in "
                          f"[0, 2**32)" + (f", and rlexp also seeds with {key} + up to {offset}" if offset else ""))


def check_positive(algo: dict[str, Any], *keys: str) -> None:
    """Each `algo.<key>` a finite number above 0: learning rates, gradient norms, epsilons."""
    for key in keys:
        check_range(f"algo.{key}", algo[key], 0.0, low_inclusive=False)


def check_tau(algo: dict[str, Any]) -> None:
    """Polyak averaging's `algo.tau` in (0, 1]: 1 copies the online network, 0 would never move the target."""
    check_range("algo.tau", algo["tau"], 0.0, 1.0, low_inclusive=False)


def check_log_std_init(algo: dict[str, Any]) -> None:
    """exp(`algo.log_std_init`) must stay a float32 a Gaussian can be drawn from and evaluated with."""
    check_range("algo.log_std_init", algo["log_std_init"], -20.0, 5.0)


def check_schedule_span(algo: dict[str, Any], scheduled: str | None) -> None:
    """A schedule over the run's updates (`scheduled` names it; None: there is none) needs their number in advance,
    which rounds at episode ends only give with one update per step collected."""
    steps = algo["gradient_steps"]
    if algo["train_freq_unit"] == "episode" and steps != -1 and scheduled:
        raise ConfigError(f"algo.train_freq_unit=episode with algo.gradient_steps={steps} makes the number of "
                          f"updates unknown in advance, and {scheduled} spans it; use algo.gradient_steps=-1 "
                          f"or algo.train_freq_unit=step")


def check_sde_sample_freq(algo: dict[str, Any]) -> None:
    freq = algo["sde_sample_freq"]
    if isinstance(freq, bool) or not isinstance(freq, int) or (freq < 1 and freq != -1):
        raise ConfigError(f"algo.sde_sample_freq={freq!r} must be a positive number of steps, or -1 to draw gSDE's "
                          f"exploration matrices only at the start of each rollout (or round of collection)")


def check_targets(key: str, entries: Any, named: str, owner: str, example: str) -> None:
    """`key` (env.wrappers, callbacks) is a list of `{_target_: <dotted path>, <keyword arguments>}`: each entry
    names `named` (a gymnasium wrapper, ...) and passes `owner`'s keyword arguments only."""
    if not isinstance(entries, (list, tuple)):
        raise ConfigError(f"{key}={entries!r} must be a list of {{_target_: <dotted path>, <kwargs>}}, {example}")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("_target_"), str) or not entry["_target_"]:
            raise ConfigError(f"{key}[{index}]={entry!r} needs _target_: the dotted path of {named}, {example}")
        options = sorted(key for key in entry if not isinstance(key, str) or key.startswith("_") and key != "_target_")
        if options:
            raise ConfigError(f"{key}[{index}] ({entry['_target_']}) has {', '.join(map(str, options))}: an entry "
                              f"takes _target_ and {owner} keyword arguments only (none of Hydra's instantiate "
                              f"options)")


def check_wrappers(wrappers: Any, vectorization: str = "sync") -> None:
    """env.wrappers is a list of `{_target_: <dotted path>, <keyword arguments>}`, and the vectorization can apply
    them (EnvPool's envs step in C++, where no Python wrapper runs). What each target is, is checked where the env is
    made (rlexp/envs/wrappers.py), after the trust rule for a saved config's."""
    check_targets("env.wrappers", wrappers, "a gymnasium wrapper", "the wrapper's",
                  "e.g. env.wrappers=[{_target_: gymnasium.wrappers.FlattenObservation}]")
    if wrappers and vectorization == "envpool":
        raise ConfigError("env.wrappers cannot be applied with env.vectorization=envpool: EnvPool's envs step in C++, "
                          "where no Python wrapper runs; use env.vectorization=sync or async")


def check_callbacks(callbacks: Any) -> None:
    """`callbacks` is a list of `{_target_: <dotted path>, <keyword arguments>}`. What each target builds is checked
    where the run's callbacks are built (rlexp/runners/callbacks.py), after the trust rule for a saved config's."""
    check_targets("callbacks", callbacks, "a callback class or of a function returning one", "the callback's",
                  "e.g. callbacks=[{_target_: my_package.MyCallback}]")


#: The packages each tracker of log.backends needs, and the extra that installs them.
TRACKER_PACKAGES = {"wandb": (("wandb",), "rlexp[wandb]"),
                    "mlflow": (("mlflow", "sqlalchemy", "alembic"), "rlexp[mlflow]")}   # (its SQLite store's too)


def check_backends(backends: list[str]) -> None:
    """log.backends names each backend once, and each one's packages are installed (found, not imported)."""
    import importlib.util

    if len(set(backends)) != len(backends):
        raise ConfigError(f"log.backends={backends} names a backend twice; name each once, e.g. "
                          f"log.backends=[tensorboard,csv]")
    for backend in backends:
        modules, extra = TRACKER_PACKAGES.get(backend, ((), ""))
        for module in modules:
            if importlib.util.find_spec(module) is None:
                raise ConfigError(f"log.backends names {backend}, but its package ({module}) is not installed: pip "
                                  f"install \"{extra}\"")


def check_torso(torso: Any) -> None:
    """network.torso is `{_target_: null}` (the observation space decides) or `{_target_: <dotted path>, <keyword
    arguments>}`. What the target is, is checked where it is built (rlexp/networks/user_torso.py), after the trust
    rule for a saved config's."""
    example = "e.g. network.torso._target_=my_package.nets.MyTorso"
    if torso is None:   # (`network.torso=null`: the automatic torso too)
        return
    if not isinstance(torso, dict) or not isinstance(torso.get("_target_"), (str, type(None))):
        raise ConfigError(f"network.torso={torso!r} must be {{_target_: <dotted path of a torch.nn.Module>, "
                          f"<kwargs>}}, {example}")
    options = sorted(str(key) for key in torso if not isinstance(key, str) or key.startswith("_") and key != "_target_")
    if options:
        raise ConfigError(f"network.torso has {', '.join(options)}: it takes _target_ and the module's keyword "
                          f"arguments only (none of Hydra's instantiate options)")
    if torso.get("_target_") is None and len(torso) > 1:
        raise ConfigError(f"network.torso has keyword arguments {sorted(k for k in torso if k != '_target_')} but no "
                          f"_target_ to pass them to; name the module ({example}) or drop them")

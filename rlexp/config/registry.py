"""One place per algorithm: its schema, its checks, its builder and its family.

Each module under rlexp/agents/ that defines `ALGORITHM` (an `AlgoSpec`) is an algorithm; adding one is that
module plus its YAML in conf/algo/. Nothing else in rlexp branches on an algorithm's name: the error messages
that name algorithms (`use algo=td3 or algo=ddpg`) are made from these entries too.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from rlexp.errors import ConfigError

if TYPE_CHECKING:
    from rlexp.agents.base import Agent, BuildContext
    from rlexp.envs.spaces import SpaceInfo


class Family(Enum):
    """Which runner trains an algorithm."""

    OFF_POLICY = "off-policy"    # replay memory, updates interleaved with env steps (rlexp/runners/off_policy.py)
    ON_POLICY = "on-policy"      # rollouts of the current policy, learned from then dropped (rlexp/runners/on_policy.py)


class ActionKind(Enum):
    DISCRETE = "discrete"
    CONTINUOUS = "continuous"


@dataclass(frozen=True)
class AlgoSpec:
    name: str                                          # `algo=<name>`, conf/algo/<name>.yaml
    family: Family
    schema: type                                       # the dataclass typing conf/algo/<name>.yaml
    check: Callable[[dict[str, Any], dict[str, Any]], None]   # (algo keys, whole config): ranges, cross-field rules
    build: Callable[[dict[str, Any], BuildContext], Agent]     # the agent, from its keys and the runtime facts
    # How many parameters its networks have (its keys, the env's spaces, network.hidden_sizes): counted on
    # torch's meta device, so a size too large for the machine is refused before anything is allocated.
    parameters: Callable[[dict[str, Any], SpaceInfo, tuple[int, ...]], int]
    actions: frozenset[ActionKind]                     # the action spaces it acts in
    frames: bool = False                               # it has a torso for stacked image frames
    bounded_actions: bool = False                      # it needs finite action bounds (a scaled tanh output)
    # Many seeds as one model (`seeds=[...]`): its seeds' agents -> one agent answering their runners' calls with
    # a leading member axis (rlexp/runners/seeds.py); None: its seeds run one process each (--multirun seed=...).
    members: Callable[[list[Any]], Any] | None = None


@functools.cache
def algorithms() -> dict[str, AlgoSpec]:
    """Every algorithm, by name: the `ALGORITHM` of each module in rlexp.agents."""
    import rlexp.agents

    found: dict[str, AlgoSpec] = {}
    for module in pkgutil.iter_modules(rlexp.agents.__path__):
        spec = getattr(importlib.import_module(f"rlexp.agents.{module.name}"), "ALGORITHM", None)
        if isinstance(spec, AlgoSpec):
            found[spec.name] = spec
    return dict(sorted(found.items()))


def count_parameters(*modules: Any) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def get(name: str) -> AlgoSpec:
    specs = algorithms()
    if name not in specs:
        raise ConfigError(f"algo.name={name!r} is unknown; use {_alternatives(list(specs))}")
    return specs[name]


def _alternatives(names: list[str]) -> str:
    options = [f"algo={name}" for name in names]
    return " or ".join([", ".join(options[:-1]), options[-1]] if len(options) > 2 else options)


def acting_in(kind: ActionKind, frames: bool = False) -> list[str]:
    """The algorithms that act in `kind` action spaces (and read stacked frames, if `frames`)."""
    return [s.name for s in algorithms().values() if kind in s.actions and (s.frames or not frames)]


def check_fits(spec: AlgoSpec, spaces: SpaceInfo) -> None:
    """Stop unless the algorithm can act in the env's spaces; the message names the algorithms that can."""
    name, where = spec.name, spaces.description
    if spaces.frames and not spec.frames:
        raise ConfigError(f"algo={name} has no image torso, and {where} observes stacked frames; use "
                          f"{_alternatives(acting_in(ActionKind.DISCRETE, frames=True))} (the Nature CNN) or an "
                          f"env with vector observations")
    if not spaces.frames and not spaces.flat:
        raise ConfigError(f"algo={name} feeds observations to an MLP, which needs a flat (1-D Box) observation "
                          f"space, but {where} does not have one; for Atari games use env=atari (stacked "
                          f"84x84 frames for the Nature CNN), otherwise gymnasium.wrappers.FlattenObservation")
    if not spaces.discrete and not spaces.continuous:
        raise ConfigError(f"algo={name} needs a Discrete or a Box action space, but {where} has neither")
    kind = ActionKind.DISCRETE if spaces.discrete else ActionKind.CONTINUOUS
    if kind not in spec.actions:
        others = acting_in(kind, frames=spaces.frames)
        if kind is ActionKind.CONTINUOUS:
            need, hint = "a discrete action space", f"is continuous; use {_alternatives(others)} for continuous actions"
        else:
            need, hint = "a continuous (Box) action space", f"is discrete; use {_alternatives(others)} for " \
                                                           f"discrete actions"
        raise ConfigError(f"algo={name} needs {need}, but {where} {hint}" if others else
                          f"algo={name} needs {need}, but {where} {hint.split(';')[0]}")
    if kind is ActionKind.CONTINUOUS and spec.bounded_actions and not spaces.bounded:
        raise ConfigError(f"algo={name} scales a tanh actor to the action bounds, but {where} has an unbounded "
                          f"action space; bound it with gymnasium.wrappers.RescaleAction or ClipAction")

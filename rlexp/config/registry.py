"""What a registry entry is: an algorithm's schema, checks, builder, family and members (`AlgoSpec`).

The entries themselves are found in rlexp/agents/ (rlexp/agents/registry.py): each agent module defines its
`ALGORITHM`. This module holds only their types, so that the config layer can check a config against an entry
without importing the algorithms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rlexp.config.actions import ActionKind
from rlexp.errors import ConfigError

if TYPE_CHECKING:
    from rlexp.agents.base import BuildContext
    from rlexp.agents.contracts import Agent
    from rlexp.envs.spaces import SpaceInfo
    from rlexp.networks.user_torso import Torso


class Family(Enum):
    """Which runner trains an algorithm."""

    OFF_POLICY = "off-policy"    # replay memory, updates interleaved with env steps (rlexp/runners/off_policy.py)
    ON_POLICY = "on-policy"      # rollouts of the current policy, learned from, then dropped (runners/on_policy.py)


#: An algorithm's config schema (the dataclass typing conf/algo/<name>.yaml).
C = TypeVar("C")


@dataclass(frozen=True)
class AlgoSpec(Generic[C]):
    name: str                                          # `algo=<name>`, conf/algo/<name>.yaml
    family: Family
    schema: type[C]                                    # the dataclass typing conf/algo/<name>.yaml
    # (its keys as validated plain data, the whole config): ranges, cross-field rules, before anything is built
    check: Callable[[dict[str, Any], dict[str, Any]], None]
    build: Callable[[C, BuildContext], Agent]          # the agent, from its typed config and the runtime facts
    # How many parameters its networks have (its config, the env's spaces, network.hidden_sizes, network.torso's
    # module or None): counted on torch's meta device, so a size too large for the machine is refused before
    # anything is allocated.
    parameters: Callable[[C, SpaceInfo, tuple[int, ...], Torso | None], int]
    actions: frozenset[ActionKind]                     # the action spaces it acts in
    frames: bool = False                               # it has a torso for stacked image frames
    channels_last: bool = False                        # and for channel-last images (H, W, C) too
    bounded_actions: bool = False                      # it needs finite action bounds (a scaled tanh output)
    # Many seeds as one model (`seeds=[...]`): its seeds' agents -> one agent answering their runners' calls with
    # a leading member axis (rlexp/runners/seeds.py); None: its seeds run one process each (--multirun seed=...).
    members: Callable[[list[Any]], Any] | None = None
    # Its policy is a distribution (a StochasticAgent): `eval.deterministic=false` evaluates draws from it.
    stochastic: bool = False
    # Its update reports TD errors back to a prioritized replay (`algo.prioritized=true`; BuildContext.replay).
    prioritized: bool = False


def count_parameters(*modules: Any) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def find(specs: Mapping[str, AlgoSpec], name: str) -> AlgoSpec:
    """The entry `algo.name` names, or a ConfigError that lists the others."""
    if name not in specs:
        raise ConfigError(f"algo.name={name!r} is unknown; use {alternatives(list(specs))}")
    return specs[name]


def alternatives(names: list[str]) -> str:
    """'algo=a, algo=b or algo=c'."""
    options = [f"algo={name}" for name in names]
    return " or ".join([", ".join(options[:-1]), options[-1]] if len(options) > 2 else options)

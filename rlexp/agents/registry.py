"""One place per algorithm: every module under rlexp/agents/ that defines `ALGORITHM` (an `AlgoSpec`) is one.

Adding an algorithm is that module plus its YAML in conf/algo/. Nothing else in rlexp branches on an
algorithm's name: the error messages that name algorithms (`use algo=td3 or algo=ddpg`) are made from these
entries too.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

import gymnasium as gym

from rlexp.config.actions import ActionKind
from rlexp.config.registry import AlgoSpec, alternatives, find
from rlexp.envs.spaces import SpaceInfo, is_image
from rlexp.errors import ConfigError


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


def get(name: str) -> AlgoSpec:
    return find(algorithms(), name)


def acting_in(kind: ActionKind, frames: bool = False) -> list[str]:
    """The algorithms that act in `kind` action spaces (and read stacked frames, if `frames`)."""
    return [s.name for s in algorithms().values() if kind in s.actions and (s.frames or not frames)]


SPACE_NAMES = {ActionKind.DISCRETE: "Discrete", ActionKind.CONTINUOUS: "Box",
               ActionKind.MULTI_DISCRETE: "MultiDiscrete", ActionKind.MULTI_BINARY: "MultiBinary"}


def space_names(spec: AlgoSpec, joined: str) -> str:
    """The gymnasium spaces an algorithm acts in, in ActionKind's order, joined (for messages)."""
    return joined.join(SPACE_NAMES[kind] for kind in ActionKind if kind in spec.actions)


def check_fits(spec: AlgoSpec, spaces: SpaceInfo) -> None:
    """Stop unless the algorithm can act in the env's spaces; the message names the algorithms that can."""
    name, where = spec.name, spaces.description
    if spaces.frames and not (spec.frames and (spec.channels_last or not spaces.channels_last)):
        readers = [s.name for s in algorithms().values() if s.frames and (s.channels_last or not spaces.channels_last)]
        layout = "channel-last images" if spaces.channels_last else "images"
        raise ConfigError(f"algo={name} has no torso for {layout}, and {where} observes them; use "
                          f"{alternatives(readers)} (the Nature CNN)")
    if spaces.images and not spaces.frames and not spec.frames:   # a Dict/Tuple observation's image entries
        readers = [s.name for s in algorithms().values() if s.frames]
        raise ConfigError(f"algo={name} has no torso for images, and {where} has image entries; use "
                          f"{alternatives(readers)} (the Nature CNN)")
    if not spaces.frames and not spaces.flat and not spaces.multi_input:
        # (the flat kinds are rlexp/networks/encoders.py's: Box, Discrete, MultiDiscrete, MultiBinary)
        if is_image(spaces.obs_space):
            raise ConfigError(f"algo={name} reads images with their channels (1, 3 or 4, or up to 16 stacked frames) "
                              f"first or last, and {where} has neither; set network.image.channels_first=true or "
                              f"false, or use gymnasium.wrappers.FlattenObservation")
        raise ConfigError(f"algo={name} reads Box, Discrete, MultiDiscrete and MultiBinary observations, and {where} "
                          f"has none of them; use gymnasium.wrappers.FlattenObservation")
    kind = spaces.action_kind
    if kind is None:
        multi = [s for s in algorithms().values() if ActionKind.MULTI_DISCRETE in s.actions]
        if isinstance(spaces.action_space, (gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)) and multi:
            raise ConfigError(f"{alternatives([s.name for s in multi])} take MultiDiscrete and MultiBinary actions of "
                              f"one axis, with choices from 0, but {where} does not; wrap the env to act in such a "
                              f"space (a gymnasium.ActionWrapper)")
        raise ConfigError(f"algo={name} needs a {space_names(spec, ' or a ')} action space, "
                          f"but {where} has none of them")
    if kind in (ActionKind.MULTI_DISCRETE, ActionKind.MULTI_BINARY) and kind not in spec.actions:
        others = acting_in(kind, frames=spaces.frames)
        raise ConfigError(f"algo={name} acts in {space_names(spec, ', ')} action spaces, and {where} acts in a "
                          f"{SPACE_NAMES[kind]} one; " + (f"use {alternatives(others)}" if others else
                                                          "no algorithm here acts in it"))
    if kind not in spec.actions:
        others = acting_in(kind, frames=spaces.frames)
        if kind is ActionKind.CONTINUOUS:
            need, hint = "a discrete action space", f"is continuous; use {alternatives(others)} for continuous actions"
        else:
            need, hint = "a continuous (Box) action space", f"is discrete; use {alternatives(others)} for " \
                                                           f"discrete actions"
        raise ConfigError(f"algo={name} needs {need}, but {where} {hint}" if others else
                          f"algo={name} needs {need}, but {where} {hint.split(';')[0]}")
    if kind is ActionKind.CONTINUOUS and spec.bounded_actions and not spaces.bounded:
        raise ConfigError(f"algo={name} scales a tanh actor to the action bounds, but {where} has an unbounded "
                          f"action space; bound it with gymnasium.wrappers.RescaleAction or ClipAction")

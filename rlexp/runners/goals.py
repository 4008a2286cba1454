"""A goal-conditioned env's goals for hindsight relabelling (`algo.her`, rlexp/replay/her.py), or the one-line
refusal of an env that has none."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from rlexp.envs.spaces import SpaceInfo
from rlexp.errors import ConfigError
from rlexp.replay import Goals

#: The entries of a goal-conditioned observation (gymnasium-robotics' GoalEnv convention)
GOAL_ENTRIES = ("observation", "achieved_goal", "desired_goal")


def goals_of(spaces: SpaceInfo, env: gym.Env) -> Goals:
    """Where the achieved and desired goals lie in the packed observation rows, and the env's compute_reward."""
    entries = {entry.path: entry for entry in spaces.entries}
    missing = [name for name in GOAL_ENTRIES if name not in entries]
    if missing or not spaces.multi_input:
        has = f"observations with the entries {sorted(entries)}" if entries else "no Dict observations"
        raise ConfigError(f"algo.her=true relabels goals, and {spaces.description} has {has}: HER needs Dict "
                          f"observations with {', '.join(GOAL_ENTRIES)} (gymnasium-robotics' goal envs); use "
                          f"algo.her=false")
    achieved, desired = entries["achieved_goal"], entries["desired_goal"]
    if achieved.shape != desired.shape or achieved.dtype != desired.dtype or achieved.image:
        raise ConfigError(f"algo.her=true puts achieved goals in place of desired ones, and {spaces.description}'s "
                          f"achieved_goal {achieved.space} and desired_goal {desired.space} differ (or are images); "
                          f"use algo.her=false")
    if spaces.stored_once:
        raise ConfigError(f"algo.her=true relabels transitions whose observations replay keeps whole, and "
                          f"{spaces.description} has image entries it stores once; use algo.her=false")
    try:
        compute_reward = env.get_wrapper_attr("compute_reward")
    except AttributeError:
        compute_reward = None
    if not callable(compute_reward):
        raise ConfigError(f"algo.her=true recomputes relabelled rewards with the env's compute_reward(achieved_goal, "
                          f"desired_goal, info), which {spaces.description} lacks; use algo.her=false")
    return Goals(achieved=slice(achieved.offset, achieved.offset + achieved.nbytes),
                 desired=slice(desired.offset, desired.offset + desired.nbytes),
                 dtype=torch.from_numpy(np.zeros(0, achieved.dtype)).dtype, compute_reward=compute_reward)

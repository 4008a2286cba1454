"""Compatibility of a saved config with today's: the keys a resume may change, and the keys added since a run was
made, at the value their absence meant (so an old run still resumes, evaluates and loads as it was trained)."""

from __future__ import annotations

import copy
from typing import Any


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'algo': {'lr': 1}} -> {'algo.lr': 1}; lists become strings (TensorBoard hparams take scalars)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (int, float, str, bool)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


#: Keys (and key prefixes, ending in ".") that change how a run executes and what it records, never what it
#: learns: where it runs, its threads, compilation, how long an env worker may take, logging, checkpoints, and the
#: resume itself. `rlexp plot` pools runs that differ only in these (and the seed); a resume may change them.
EXECUTION_KEYS = ("device", "gpu_placement", "torch_threads", "compile", "compile_mode", "env.step_timeout", "log.",
                  "checkpoint.", "resume")

#: Keys a resumed run may change: its budgets, stop rules and evaluations, and how it executes; everything else
#: (algo, env, network, seed) must match the checkpoint.
MUTABLE_KEYS = ("total_steps", "env.total_steps", "total_episodes", "stop.", "callbacks", "eval.", *EXECUTION_KEYS)

#: Keys added since checkpoint format 2, with the value that means what their absence meant, so a run made
#: before a key existed still resumes.
ADDED_KEYS: dict[str, Any] = {"network.activation": "relu", "env.normalize.obs": False, "env.normalize.reward": False,
                               "env.normalize.clip_obs": 10.0, "env.normalize.clip_reward": 10.0,
                               "algo.use_sde": False, "algo.sde_sample_freq": -1, "algo.log_std_init": -3.0,
                               "algo.lr_schedule": "constant", "total_episodes": None, "stop.window": 100,
                               "stop.mean_return": None, "stop.eval_return": None,
                               "log.heldout_states": 0, "seeds": None, "env.wrappers": [],
                               # prioritized replay's keys, declared for every off-policy algorithm (DQN had them)
                               "algo.prioritized": False, "algo.priority_alpha": 0.6, "algo.priority_beta0": 0.4,
                               "algo.priority_eps": 1.0e-6,
                               # image observations' channel order, detected (the only way before the key)
                               "network.image.channels_first": None,
                               # auto, the default, alike for uint8 images (a float rank-3 Box shaped as an image
                               # was flattened then; such a run's networks no longer match its checkpoint)
                               "network.image.enabled": "auto",
                               "network.image.cnn": "nature",   # the only CNN before the key
                               # no torso of the user's: the observation space decided
                               "network.torso._target_": None,
                               "eval.deterministic": True,   # (the only evaluation before the key)
                               "eval.num_envs": 1,   # one env played the episodes one after another
                               # DQN's noisy networks and distributions: off, as DQN was before them
                               "algo.noisy": False, "algo.noisy_sigma": 0.5, "algo.distribution": "expected",
                               "algo.atoms": 51, "algo.v_min": -10.0, "algo.v_max": 10.0, "algo.quantiles": 200,
                               "algo.adam_eps": 1.0e-8,
                               # hindsight relabelling: off, as replay was before it
                               "algo.her": False, "algo.her_n_sampled_goal": 4,
                               "algo.her_goal_selection_strategy": "future",
                               "callbacks": [],   # (none before the key)
                               "log.backends": ["tensorboard"]}   # (the only one before the key)



def with_added_keys(config: dict[str, Any]) -> dict[str, Any]:
    """A saved config with every key added since it was made, at the value that means what its absence meant
    (`rlexp eval` builds agents of old runs from it). A key whose section the config lacks is not added."""
    filled = copy.deepcopy(config)
    for dotted, value in ADDED_KEYS.items():
        *parents, key = dotted.split(".")
        node: Any = filled
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.setdefault(key, value)
    return filled


def kept_from_before(saved: dict[str, Any], config: dict[str, Any], overridden: set[str]) -> dict[str, Any]:
    """A resumed run made before some keys existed keeps their old meaning: each key of ADDED_KEYS the saved config
    lacks (where it has the key's section), today's config has (its algorithm's schema declares it) and the command
    does not set (`overridden`: the keys typed) is set in `config`, in place, to the value its absence meant rather
    than today's default (a run evaluated on one env goes on doing so). Returns the keys set, with their values."""
    kept: dict[str, Any] = {}
    for dotted, value in ADDED_KEYS.items():
        *parents, key = dotted.split(".")
        old: Any = saved
        new: Any = config
        for name in parents:
            old = old.get(name) if isinstance(old, dict) else None
            new = new.get(name) if isinstance(new, dict) else None
        if isinstance(old, dict) and key not in old and isinstance(new, dict) and key in new \
                and dotted not in overridden and new[key] != value:
            new[key] = kept[dotted] = copy.deepcopy(value)
    return kept


def may_change() -> str:
    """The keys a resume may change, as a refusal lists them: `total_steps, ..., stop.*, ...`."""
    keys = [f"{key}*" if key.endswith(".") else key for key in MUTABLE_KEYS if key != "resume"]
    return f"{', '.join(keys[:-1])} and {keys[-1]}"


def config_conflicts(saved: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`key: old -> new` for each key that differs and may not change on resume."""
    old_flat, new_flat = flatten(saved), flatten(new)
    conflicts = []
    for key in sorted(set(old_flat) | set(new_flat)):
        if any(key == m or (m.endswith(".") and key.startswith(m)) for m in MUTABLE_KEYS):
            continue
        # (a key added since the run was made counts at the value its absence meant, flattened as the config is)
        absent = flatten({key: ADDED_KEYS[key]})[key] if key in ADDED_KEYS else "<absent>"
        old, new_value = old_flat.get(key, absent), new_flat.get(key, "<absent>")
        if old != new_value:
            conflicts.append(f"{key}: {old} -> {new_value}")
    return conflicts

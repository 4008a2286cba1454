"""Range and cross-field checks on the resolved config (a plain dict), before anything is built.

Keys and types (including the choice-valued keys such as algo.lr_schedule) are checked earlier, by the schema
while Hydra composes. Here: the keys every run has, then the algorithm family's, then the algorithm's own (its
registry entry).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from typing import Any, cast

from rlexp.config import registry
from rlexp.config.checks import (
    check_backends,
    check_callbacks,
    check_log_std_init,
    check_positive,
    check_positive_int,
    check_range,
    check_sde_sample_freq,
    check_seed,
    check_torso,
    check_wrappers,
)
from rlexp.config.schema import COMPILE_MODES, TrainConfig
from rlexp.errors import ConfigError

#: Offset of the evaluation env's seed from the run's seed.
EVAL_SEED_OFFSET = 10_000

#: Step counters are int64 on the device (the non-finite guard records steps there), with room to spare.
MAX_STEPS = 2**62


def validate(cfg: dict[str, Any], algorithms: Mapping[str, registry.AlgoSpec]) -> registry.AlgoSpec:
    """Check the whole config against the registry's entries (rlexp.agents.registry.algorithms()); returns the
    entry of its algorithm."""
    spec = registry.find(algorithms, cfg["algo"].get("name"))

    check_known_keys(cfg, TrainConfig, "", {"algo": spec.schema})
    check_seed("seed", cfg["seed"], EVAL_SEED_OFFSET)
    check_seeds(cfg, spec, algorithms)
    check_positive_int("total_steps", cfg["total_steps"], limit=MAX_STEPS)
    env = cfg["env"]
    check_positive_int("env.num_envs", env["num_envs"])
    check_wrappers(env.get("wrappers", []), env["vectorization"])
    check_torso(cfg["network"].get("torso"))
    check_callbacks(cfg.get("callbacks", []))
    if env["num_envs"] > cfg["total_steps"]:
        raise ConfigError(f"env.num_envs={env['num_envs']} is more than total_steps={cfg['total_steps']}: each vector "
                          f"step takes one step in every env; lower env.num_envs or raise total_steps")
    atari = env.get("atari")
    if atari:
        for key in ("frame_skip", "screen_size", "frame_stack"):
            check_positive_int(f"env.atari.{key}", atari[key])
        check_positive_int("env.atari.noop_max", atari["noop_max"], allow_zero=True)
        if atari["screen_size"] < 36:
            raise ConfigError(f"env.atari.screen_size={atari['screen_size']} is smaller than the Nature CNN's "
                              f"36-pixel minimum; use 84")
        if atari["frame_stack"] > 16:
            raise ConfigError(f"env.atari.frame_stack={atari['frame_stack']} is more than the 16 frames rlexp stacks "
                              f"as the Nature CNN's input channels; use 4")
    reading = cfg["network"].get("image", {}).get("enabled", "auto")
    if not (isinstance(reading, bool) or reading in ("auto", "uint8")):
        raise ConfigError(f"network.image.enabled={reading!r} must be auto, uint8, true or false")
    sizes = cfg["network"]["hidden_sizes"]
    if not isinstance(sizes, list) or not sizes or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0
                                                           for w in sizes):
        raise ConfigError(f"network.hidden_sizes={sizes!r} must be a non-empty list of positive integers, "
                          f"e.g. network.hidden_sizes=[256,256]")
    if cfg.get("total_episodes") is not None:
        check_positive_int("total_episodes", cfg["total_episodes"], limit=MAX_STEPS)
    stop = cfg.get("stop") or {}
    if stop:
        check_positive_int("stop.window", stop["window"])
        for key in ("mean_return", "eval_return"):
            if stop[key] is not None and not math.isfinite(stop[key]):
                raise ConfigError(f"stop.{key}={stop[key]} must be a finite number (or null: no such rule)")
        if stop["eval_return"] is not None and cfg["eval"]["every"] == 0:
            raise ConfigError(f"stop.eval_return={stop['eval_return']} needs evaluations during the run, but "
                              f"eval.every=0 evaluates only at the end; set eval.every, e.g. eval.every=5000")
    check_positive_int("eval.every", cfg["eval"]["every"], allow_zero=True)
    check_positive_int("eval.episodes", cfg["eval"]["episodes"])
    check_positive_int("eval.num_envs", cfg["eval"].get("num_envs", 1))
    check_positive_int("eval.max_episode_steps", cfg["eval"].get("max_episode_steps", 1))
    if cfg["eval"].get("deterministic") is False and not spec.stochastic:
        raise ConfigError(stochastic_refused(spec.name, algorithms))
    check_range("env.step_timeout", env.get("step_timeout", 1.0), 0.0, low_inclusive=False)
    check_positive_int("checkpoint.every", cfg["checkpoint"]["every"], allow_zero=True)
    check_positive_int("checkpoint.keep", cfg["checkpoint"]["keep"])
    check_positive_int("log.every", cfg["log"]["every"])
    check_positive_int("log.heldout_states", cfg["log"].get("heldout_states", 0), allow_zero=True, limit=10**6 + 1)
    check_backends(cfg["log"].get("backends", ["tensorboard"]))
    check_positive_int("torch_threads", cfg["torch_threads"], allow_zero=True)
    check_compile(cfg)
    normalize = env["normalize"]
    check_range("env.normalize.clip_obs", normalize["clip_obs"], 0.0, low_inclusive=False)
    check_range("env.normalize.clip_reward", normalize["clip_reward"], 0.0, low_inclusive=False)
    if spec.family is registry.Family.OFF_POLICY:
        check_off_policy(cfg["algo"], cfg, spec, algorithms)
    else:
        check_on_policy(cfg["algo"], cfg)
    spec.check(cfg["algo"], cfg)
    return spec


def check_known_keys(node: dict[str, Any], schema: type, prefix: str, schemas: dict[str, type]) -> None:
    """Every key is one of its schema's: Hydra's `+key=value` adds a key even to a typed config, and a key no code
    reads would otherwise be ignored without a word (`+algo.n_setps=8`). Free-form dicts (env.kwargs) are kept."""
    hints = typing.get_type_hints(schema)
    for key, value in node.items():
        if key not in hints:
            where = prefix.rstrip(".") or "the config"
            if schema is schemas.get("algo"):
                where = f"algo={node.get('name')}'s config"
            raise ConfigError(f"{prefix}{key} is not a key of {where}; its keys: {', '.join(sorted(hints))}")
        child = schemas.get(f"{prefix}{key}") or hints[key]
        child = next((t for t in typing.get_args(child) if dataclasses.is_dataclass(t)), child)   # Optional[...]
        if dataclasses.is_dataclass(child) and isinstance(value, dict):
            check_known_keys(value, cast(type, child), f"{prefix}{key}.", schemas)   # a class: never an instance


def check_on_policy(algo: dict[str, Any], cfg: dict[str, Any]) -> None:
    """The rollout's and the actor-critic loss's keys (PPO, A2C)."""
    check_range("algo.gamma", algo["gamma"], 0.0, 1.0)
    check_range("algo.gae_lambda", algo["gae_lambda"], 0.0, 1.0)
    check_positive_int("algo.n_steps", algo["n_steps"], limit=MAX_STEPS)
    check_positive(algo, "lr", "max_grad_norm")
    check_range("algo.ent_coef", algo["ent_coef"], 0.0)
    check_range("algo.vf_coef", algo["vf_coef"], 0.0)
    check_log_std_init(algo)
    check_sde_sample_freq(algo)
    num_envs = cfg["env"]["num_envs"]
    rollout = algo["n_steps"] * num_envs
    if rollout > cfg["total_steps"]:
        raise ConfigError(f"algo.n_steps={algo['n_steps']} x env.num_envs={num_envs} = {rollout} env steps per "
                          f"rollout is more than total_steps={cfg['total_steps']}: not one rollout would be learned "
                          f"from; lower algo.n_steps or raise total_steps")


def check_off_policy(algo: dict[str, Any], cfg: dict[str, Any], spec: registry.AlgoSpec,
                     algorithms: Mapping[str, registry.AlgoSpec]) -> None:
    """The replay memory's and the off-policy runner's keys."""
    check_range("algo.priority_alpha", algo["priority_alpha"], 0.0, 1.0)
    check_range("algo.priority_beta0", algo["priority_beta0"], 0.0, 1.0)
    check_positive(algo, "priority_eps")
    if algo["prioritized"] and not spec.prioritized:
        able = [f"algo={name}" for name, other in algorithms.items() if other.prioritized]
        raise ConfigError(f"algo.prioritized=true needs an update that reports TD errors back to the replay, which "
                          f"algo={spec.name}'s does not; use {' or '.join(able)}, or algo.prioritized=false")
    check_positive_int("algo.her_n_sampled_goal", algo["her_n_sampled_goal"])
    if algo["her"] and (algo["n_step"] != 1 or algo["prioritized"]):
        key = "algo.prioritized=true" if algo["prioritized"] else f"algo.n_step={algo['n_step']}"
        raise ConfigError(f"algo.her=true relabels uniform replay's 1-step transitions, and {key} asks for "
                          f"{'prioritized replay' if algo['prioritized'] else 'n-step returns'}; use "
                          f"{'algo.prioritized=false' if algo['prioritized'] else 'algo.n_step=1'}")
    if algo["her"] and (cfg["env"]["normalize"]["obs"] or cfg["env"]["normalize"]["reward"]):
        key = "env.normalize.obs" if cfg["env"]["normalize"]["obs"] else "env.normalize.reward"
        raise ConfigError(f"algo.her=true recomputes rewards from the stored goals with the env's compute_reward, "
                          f"and {key}=true stores standardised (or scaled) ones it cannot read; use {key}=false")
    num_envs = cfg["env"]["num_envs"]
    check_range("algo.gamma", algo["gamma"], 0.0, 1.0)
    for key in ("batch_size", "buffer_size", "train_freq", "n_step"):
        check_positive_int(f"algo.{key}", algo[key])
    steps = algo["gradient_steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or (steps < 1 and steps != -1):
        raise ConfigError(f"algo.gradient_steps={steps!r} must be a positive integer, or -1 for one update per "
                          f"env step collected since the last round (as in SB3)")
    check_positive_int("algo.learning_starts", algo["learning_starts"], allow_zero=True)
    if algo["batch_size"] > algo["buffer_size"]:
        raise ConfigError(f"algo.batch_size={algo['batch_size']} exceeds algo.buffer_size={algo['buffer_size']}; "
                          f"lower the batch or enlarge the buffer")
    if algo["learning_starts"] >= cfg["total_steps"]:
        raise ConfigError(f"algo.learning_starts={algo['learning_starts']} >= total_steps={cfg['total_steps']}: "
                          f"nothing would be learned; raise total_steps or lower algo.learning_starts")
    if algo["train_freq_unit"] == "episode" and num_envs > 1:
        raise ConfigError(f"algo.train_freq_unit=episode needs env.num_envs=1 (got {num_envs}): with several envs "
                          f"the episodes end at different steps, so there is no one episode end to train at "
                          f"(SB3 refuses it too); use algo.train_freq_unit=step")


def stochastic_refused(name: str, algorithms: Mapping[str, registry.AlgoSpec], key: str = "eval.deterministic") -> str:
    """The refusal of eval.deterministic=false (`key`) for an algorithm whose policy has no distribution to draw
    from."""
    drawing = registry.alternatives(sorted(other.name for other in algorithms.values() if other.stochastic))
    return (f"{key}=false draws actions from a stochastic policy, and algo={name}'s policy is "
            f"deterministic (its exploration is added noise or epsilon, not a policy); {drawing} have one")


def check_seeds(cfg: dict[str, Any], spec: registry.AlgoSpec, algorithms: Mapping[str, registry.AlgoSpec]) -> None:
    """`seeds=[...]`: distinct seeds, of an algorithm whose seeds batch, with update rounds every seed takes at the
    same step (they move in lockstep)."""
    seeds = cfg.get("seeds")
    if seeds is None:
        return
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"seeds={seeds!r} must be a non-empty list of seeds, e.g. seeds=[0,1,2,3]")
    for seed in seeds:
        check_seed("seeds", seed, EVAL_SEED_OFFSET)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds={seeds} repeats a seed: each seed is one run")
    if spec.members is None:
        batched = ", ".join(name for name, other in algorithms.items() if other.members is not None)
        raise ConfigError(f"seeds=[...] trains many seeds as one model for {batched} so far, not {spec.name}; "
                          f"run its seeds one process each: rlexp train --multirun seed={','.join(map(str, seeds))}")
    if cfg["algo"].get("batch_norm"):
        raise ConfigError("seeds=[...] with algo.batch_norm=true: batch normalization is not batched over seeds yet; "
                          "run the seeds one process each: rlexp train --multirun seed=" + ",".join(map(str, seeds)))
    if cfg["algo"].get("train_freq_unit") == "episode":
        raise ConfigError("seeds=[...] with algo.train_freq_unit=episode: each seed's rounds would fall at its own "
                          "episode ends, and the seeds learn in lockstep; use algo.train_freq_unit=step, or run the "
                          "seeds one process each: rlexp train --multirun seed=" + ",".join(map(str, seeds)))


def check_compile(cfg: dict[str, Any]) -> None:
    if cfg["compile"] not in (True, False, "auto"):
        raise ConfigError(f"compile={cfg['compile']!r} must be true, false or auto (auto: on for CUDA, off on the CPU)")
    if cfg["compile_mode"] is not None and cfg["compile_mode"] not in COMPILE_MODES:
        raise ConfigError(f"compile_mode={cfg['compile_mode']!r} must be null or one of torch.compile's modes: "
                          f"{', '.join(COMPILE_MODES)}")

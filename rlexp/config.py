"""Checks on the composed config that must pass before any compute, and the device choice.

Every failure is a `ConfigError` whose message is one line naming the key, the value and the fix.
"""

from __future__ import annotations

import math

import torch

from rlexp.errors import ConfigError

__all__ = ["ConfigError", "LOOP_KEYS", "check_positive_int", "check_range", "resolve_device", "validate"]


def resolve_device(device: str) -> torch.device:
    """`auto` picks CUDA when it is available; an explicit CUDA device must exist."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device={device!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={device!r} is not supported; use auto, cpu, cuda or cuda:N")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} but CUDA is not available on this machine; use device=cpu or device=auto")
        index = resolved.index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA device(s); "
                f"use cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
    return resolved


def check_range(key: str, value: float, low: float | None = None, high: float | None = None,
                *, low_inclusive: bool = True, high_inclusive: bool = True) -> None:
    """Raise a ConfigError unless low <= value <= high (bounds optional, exclusivity per side).

    NaN and infinity are refused everywhere: no setting means anything useful with them.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={value!r} must be a number")
    if not math.isfinite(value):
        raise ConfigError(f"{key}={value!r} must be a finite number")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ConfigError(f"{key}={value!r} is outside {span}")


def check_positive_int(key: str, value: int, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        need = "a non-negative integer" if allow_zero else "a positive integer"
        raise ConfigError(f"{key}={value!r} must be {need}")


# Keys of the `algo` group that configure the loop and the replay buffer, not the agent's constructor
# (the buffer computes the discounted n-step returns, so it owns gamma).
LOOP_KEYS = ("gamma", "batch_size", "buffer_size", "learning_starts", "train_freq", "train_freq_unit", "gradient_steps",
             "n_step", "prioritized", "priority_alpha", "priority_beta0", "priority_eps")


def validate(cfg: dict) -> None:
    """Range and cross-field checks on the resolved config (a plain dict), before anything is built.

    Keys and types (including the choice-valued keys such as algo.lr_schedule) are checked earlier,
    by the schema in rlexp/schema.py while Hydra composes.
    """
    algo = cfg["algo"]
    name = algo.get("name")
    if name not in ("dqn", "ddpg", "td3"):
        raise ConfigError(f"algo.name={name!r} is unknown; use algo=dqn, algo=ddpg or algo=td3")
    if isinstance(cfg["seed"], bool) or not isinstance(cfg["seed"], int):
        raise ConfigError(f"seed={cfg['seed']!r} must be an integer")
    check_positive_int("total_steps", cfg["total_steps"])
    check_range("algo.gamma", algo["gamma"], 0.0, 1.0)
    check_range("algo.tau", algo["tau"], 0.0, 1.0, low_inclusive=False)
    for key in ("batch_size", "buffer_size", "train_freq"):
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
    if name == "dqn":
        scheduled = ("algo.lr_schedule=linear" if algo["lr_schedule"] != "constant" else
                     "algo.prioritized's beta annealing" if algo["prioritized"] else None)
        if algo["train_freq_unit"] == "episode" and steps != -1 and scheduled:
            raise ConfigError(f"algo.train_freq_unit=episode with algo.gradient_steps={steps} makes the number of "
                              f"updates unknown in advance, and {scheduled} spans it; use algo.gradient_steps=-1 "
                              f"or algo.train_freq_unit=step")
        check_range("algo.lr", algo["lr"], 0.0, low_inclusive=False)
        check_positive_int("algo.target_update_interval", algo["target_update_interval"])
        check_range("algo.exploration_fraction", algo["exploration_fraction"], 0.0, 1.0)
        check_range("algo.exploration_initial_eps", algo["exploration_initial_eps"], 0.0, 1.0)
        check_range("algo.exploration_final_eps", algo["exploration_final_eps"], 0.0, 1.0)
        check_range("algo.max_grad_norm", algo["max_grad_norm"], 0.0, low_inclusive=False)
        check_positive_int("algo.n_step", algo["n_step"])
        check_range("algo.priority_alpha", algo["priority_alpha"], 0.0, 1.0)
        check_range("algo.priority_beta0", algo["priority_beta0"], 0.0, 1.0)
        check_range("algo.priority_eps", algo["priority_eps"], 0.0, low_inclusive=False)
    else:
        check_range("algo.actor_lr", algo["actor_lr"], 0.0, low_inclusive=False)
        check_range("algo.critic_lr", algo["critic_lr"], 0.0, low_inclusive=False)
        noise = algo["noise"]
        check_range("algo.noise.sigma", noise["sigma"], 0.0)
        check_range("algo.noise.theta", noise["theta"], 0.0, low_inclusive=False)
        check_range("algo.critic_weight_decay", algo["critic_weight_decay"], 0.0)
        check_range("algo.final_layer_init", algo["final_layer_init"], 0.0)
        depth = len(cfg["network"]["hidden_sizes"]) if isinstance(cfg["network"]["hidden_sizes"], list) else 0
        if not isinstance(algo["critic_action_layer"], int) or not 0 <= algo["critic_action_layer"] <= max(depth, 0):
            raise ConfigError(f"algo.critic_action_layer={algo['critic_action_layer']!r} must be a layer of the "
                              f"critic: 0 (with the state) to {depth} (network.hidden_sizes has {depth} layers)")
    if name == "td3":
        check_positive_int("algo.policy_delay", algo["policy_delay"])
        check_range("algo.target_noise", algo["target_noise"], 0.0)
        check_range("algo.target_noise_clip", algo["target_noise_clip"], 0.0)
    atari = cfg["env"].get("atari")
    if atari:
        for key in ("frame_skip", "screen_size", "frame_stack"):
            check_positive_int(f"env.atari.{key}", atari[key])
        check_positive_int("env.atari.noop_max", atari["noop_max"], allow_zero=True)
        if atari["screen_size"] < 36:
            raise ConfigError(f"env.atari.screen_size={atari['screen_size']} is smaller than the Nature CNN's "
                              f"36-pixel minimum; use 84")
    sizes = cfg["network"]["hidden_sizes"]
    if not isinstance(sizes, list) or not sizes or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0
                                                           for w in sizes):
        raise ConfigError(f"network.hidden_sizes={sizes!r} must be a non-empty list of positive integers, "
                          f"e.g. network.hidden_sizes=[256,256]")
    check_positive_int("eval.every", cfg["eval"]["every"], allow_zero=True)
    check_positive_int("eval.episodes", cfg["eval"]["episodes"])
    check_positive_int("checkpoint.every", cfg["checkpoint"]["every"], allow_zero=True)
    check_positive_int("checkpoint.keep", cfg["checkpoint"]["keep"])
    check_positive_int("log.every", cfg["log"]["every"])
    check_positive_int("torch_threads", cfg["torch_threads"], allow_zero=True)

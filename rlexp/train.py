"""`rlexp train`: compose the config, validate it, build everything, run the loop, report the result.

This is the only module that reads the Hydra config; everything it builds takes plain typed arguments.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlexp.agents import DDPG, DQN, TD3, Agent
from rlexp.buffers import ReplayBuffer
from rlexp.checkpoint import CheckpointManager
from rlexp.config import LOOP_KEYS, ConfigError, resolve_device, validate
from rlexp.envs import SpaceInfo, make_env, space_info
from rlexp.loop import LoopSettings, run
from rlexp.metrics import RunLogger, write_results
from rlexp.noise import make_action_noise

log = logging.getLogger("rlexp")


def config_dir() -> str:
    """conf/ at the top of a source checkout (editable installs); the copy inside the package otherwise."""
    source_tree = Path(__file__).resolve().parent.parent / "conf"
    return str(source_tree if source_tree.is_dir() else Path(__file__).resolve().parent / "conf")


def build_agent(algo: dict[str, Any], spaces: SpaceInfo, hidden_sizes: list[int], total_steps: int,
                device: torch.device, seed: int) -> Agent:
    """The agent named by `algo['name']`; the algo keys that are not loop keys are its constructor arguments."""
    kwargs = {k: v for k, v in algo.items() if k not in LOOP_KEYS and k != "name"}
    # Exploration has its own generator so that changing the update code never changes what is explored.
    rng = np.random.default_rng(seed)
    try:
        if algo["name"] == "dqn":
            rounds = (total_steps - algo["learning_starts"]) // algo["train_freq"]
            return DQN(spaces.obs_dim, spaces.n_actions, hidden_sizes=hidden_sizes, total_steps=total_steps,
                       total_updates=rounds * algo["gradient_steps"], device=device, rng=rng, **kwargs)
        noise = kwargs.pop("noise")
        exploration_noise = make_action_noise(noise["type"], noise["sigma"], noise["theta"],
                                              spaces.action_low.size, rng)
        agent_class = {"ddpg": DDPG, "td3": TD3}[algo["name"]]
        extra = {"n_critics": 2} if agent_class is TD3 else {}
        return agent_class(spaces.obs_dim, spaces.action_low, spaces.action_high, hidden_sizes=hidden_sizes,
                           exploration_noise=exploration_noise, device=device, **extra, **kwargs)
    except TypeError as error:  # an unknown or missing key in the algo group
        raise ConfigError(f"the algo={algo['name']} config does not fit its agent: {error}") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(cfg: DictConfig) -> float:
    """Run one training job and return its final mean evaluation return (what Hydra sweepers maximise)."""
    started = time.perf_counter()
    try:
        config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as error:
        raise ConfigError(f"the config does not resolve: {str(error).splitlines()[0]}") from None
    validate(config)
    algo, env_cfg = config["algo"], config["env"]
    device = resolve_device(config["device"])
    if config["torch_threads"]:
        torch.set_num_threads(config["torch_threads"])

    env = make_env(env_cfg["id"], env_cfg["kwargs"])
    spaces = space_info(env, algo["name"], env_cfg["id"])
    eval_env = make_env(env_cfg["id"], env_cfg["kwargs"])

    seed_everything(config["seed"])
    agent = build_agent(algo, spaces, config["network"]["hidden_sizes"], config["total_steps"], device,
                        config["seed"])
    buffer = ReplayBuffer(min(algo["buffer_size"], config["total_steps"]), spaces.obs_shape, spaces.action_shape,
                          spaces.discrete, device, seed=config["seed"])

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    tuned, env_choice = hydra_cfg.runtime.choices.get("tuned"), hydra_cfg.runtime.choices.get("env")
    if tuned and env_cfg["id"] != env_choice:
        log.warning("the preset tuned/%s was made for %s but env.id=%s; pick an env without a preset, or "
                    "override its keys", tuned, env_choice, env_cfg["id"])
    log.info("%s on %s, %d steps, seed %d, device %s -> %s", algo["name"], env_cfg["id"], config["total_steps"],
             config["seed"], device, run_dir)
    logger = RunLogger(run_dir, config["total_steps"], 0, config["log"]["progress"], config)
    checkpoints = CheckpointManager(run_dir / "checkpoints", config["checkpoint"]["keep"])
    settings = LoopSettings(
        total_steps=config["total_steps"], learning_starts=algo["learning_starts"], train_freq=algo["train_freq"],
        gradient_steps=algo["gradient_steps"], batch_size=algo["batch_size"], eval_every=config["eval"]["every"],
        eval_episodes=config["eval"]["episodes"], checkpoint_every=config["checkpoint"]["every"],
        log_every=config["log"]["every"], seed=config["seed"],
    )

    def bundle(step: int) -> dict[str, Any]:
        return {"agent": agent.state_dict(), "step": step, "algo": algo["name"], "env_id": env_cfg["id"],
                "config": config}

    try:
        result = run(agent, env, eval_env, buffer, settings, logger, checkpoints, bundle)
    finally:
        logger.close()
        env.close()
        eval_env.close()

    results = {
        "algo": algo["name"],
        "env_id": env_cfg["id"],
        "seed": config["seed"],
        "device": str(device),
        "eval_return_mean": float(result.eval_returns.mean()),
        "eval_return_std": float(result.eval_returns.std()),
        "eval_returns": [float(r) for r in result.eval_returns],
        "best_eval_return": result.best_eval_return,
        "total_steps": result.steps,
        "episodes": result.episodes,
        "train_time_s": round(result.wall_time_s, 3),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "sps": round(result.sps, 1),
    }
    write_results(run_dir / "results.json", results)
    log.info("done: eval return %.2f +/- %.2f over %d episodes, %.0f SPS, %.1f s -> %s",
             results["eval_return_mean"], results["eval_return_std"], len(result.eval_returns), results["sps"],
             results["wall_time_s"], run_dir)
    return results["eval_return_mean"]


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float:
    try:
        return train(cfg)
    except ConfigError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        # One line and a non-zero exit; nothing has been trained or written.
        print(f"rlexp train: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None

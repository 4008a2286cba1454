"""`rlexp.load`: a trained agent as a Python object, from a run directory or a checkpoint file, without Hydra.

    agent = rlexp.load("outputs/td3_Pendulum-v1/<time>")        # checkpoints/final.pt; checkpoint="best"
    env = agent.make_env()
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(agent.act(obs))

The agent takes the env's raw observations: the run's observation normalization (its training statistics,
frozen) is applied inside `act`, as inside an exported policy, so the env from `make_env` is the training env
(with its Atari preprocessing) without normalization. `rlexp eval` builds its agent here too.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf.errors import MissingMandatoryValue
from torch import nn

from rlexp.deploy.paths import CHECKPOINTS, checkpoint_path
from rlexp.envs.normalization import Normalization
from rlexp.envs.packing import Layout, pack
from rlexp.envs.spaces import SpaceInfo, invalid_entries, invalid_values
from rlexp.errors import ConfigError, EnvFault, RunFailure, one_line


def make_run_env(config: dict[str, Any], saved_in: Path, pack: bool = True, **kwargs: Any) -> gym.Env:
    """The env a run trained on, from its config saved in `saved_in` (its run directory): its id, kwargs, wrappers
    (env.wrappers) and Atari preprocessing, with `kwargs` passed to gymnasium.make on top of the run's own
    (`LoadedAgent.make_env`; `load` reads the spaces from it). The modules its env.id and wrappers name are imported
    only under rlexp/config/trust.py's rule. `pack`: Dict and Tuple observations packed as the agent stores them
    (rlexp/envs/packing.py); false, the env's raw ones."""
    from rlexp.envs import atari_settings, make_env

    env_cfg = config["env"]
    return make_env(env_cfg["id"], {**env_cfg["kwargs"], **kwargs}, atari_settings(env_cfg.get("atari")), saved_in,
                    env_cfg.get("wrappers") or (), pack)


def run_directory(checkpoint: Path) -> Path:
    """The run directory of a checkpoint file (<run>/checkpoints/<name>.pt), or the directory holding it."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def check_load_arguments(path: Any, checkpoint: Any, device: Any, seed: Any) -> int | None:
    """`load`'s arguments checked as the CLI checks `rlexp eval`'s (one ConfigError line naming the argument,
    before anything is read); returns the seed as an int (a numpy integer is one)."""
    from rlexp.config.checks import check_seed

    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"path={path!r} must be a run directory or a checkpoint file (a str or a Path)")
    if checkpoint is not None and checkpoint not in CHECKPOINTS:
        raise ConfigError(f"checkpoint={checkpoint!r} must be {' or '.join(map(repr, CHECKPOINTS))} (or None: final)")
    if not isinstance(device, str):
        raise ConfigError(f"device={device!r} must be a string: auto, cpu, cuda or cuda:N")
    if isinstance(seed, np.integer):
        seed = int(seed)
    if seed is not None:
        check_seed("seed", seed)
    return seed


def check_agent_size(file: Path, parameters: int, state: Any) -> None:
    """The networks a checkpoint's config builds hold at most the numbers its agent state holds (which has them, their
    targets and their optimizers' moments): a config altered to build far larger ones would allocate them first."""
    def numbers(value: Any) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel()
        if isinstance(value, dict):
            return sum(numbers(v) for v in value.values())
        return sum(numbers(v) for v in value) if isinstance(value, (list, tuple)) else 0

    held = numbers(state)
    if parameters > held:
        raise ConfigError(f"{file}: its config builds networks of {parameters:,} parameters, but its agent holds "
                          f"{held:,} numbers: the config and the agent do not belong together (the file was altered); "
                          f"nothing was built")


def check_statistics(file: Path, normalization: Normalization, obs_shape: tuple[int, ...]) -> None:
    """Observation statistics `act` can normalize with: the env's shape, finite (else every action is NaN)."""
    rms = normalization.obs_rms
    if rms.mean.shape != obs_shape or rms.var.shape != obs_shape:
        raise ConfigError(f"{file}: its observation statistics have shape {rms.mean.shape}, the env's observations "
                          f"{obs_shape}: the file was altered, or another version wrote it")
    if not (np.isfinite(rms.mean).all() and np.isfinite(rms.var).all() and (rms.var >= 0).all()):
        raise ConfigError(f"{file}: its observation statistics are not finite (or a variance is negative): every "
                          f"action would be NaN; the file was altered")


@dataclass
class LoadedAgent:
    """A trained agent with the config it was trained with. `agent` is the algorithm's own object (its networks,
    e.g. `agent.actor`, `agent.q_network`, `agent.policy`), `normalization` the frozen observation statistics."""

    config: dict[str, Any]       # the run's config, a plain dict
    checkpoint: Path
    step: int                    # the env step the checkpoint was written at
    device: torch.device
    spaces: SpaceInfo
    agent: Any
    normalization: Normalization | None

    @property
    def algo(self) -> str:
        return self.config["algo"]["name"]

    @property
    def env_id(self) -> str:
        return self.config["env"]["id"]

    def act(self, obs: Any, explore: bool = False) -> np.ndarray:
        """The action for one observation, or actions for a batch (first axis). Deterministic by default;
        `explore=True` adds the exploration the run ended with (DQN's final epsilon, DDPG/TD3's action noise, a
        draw from SAC's, PPO's or A2C's policy), one draw per row."""
        if not isinstance(explore, (bool, np.bool_)):
            raise ValueError(f"explore={explore!r} must be True or False")
        batch, single = self.batch_of(obs)
        actions = self.agent.act(batch, explore=explore, step=self.step)
        actions = actions.reshape(len(batch), *self.spaces.action_shape)
        return actions[0] if single else actions

    def act_sampled(self, obs: Any, generator: torch.Generator) -> np.ndarray:
        """`act`, with actions drawn from the stochastic policy (PPO's, A2C's, SAC's) by `generator`, the agent's
        own generators untouched (rlexp eval deterministic=false)."""
        if not hasattr(self.agent, "act_sampled"):
            raise ValueError(f"{self.algo}'s policy is deterministic: it has no distribution to draw actions from")
        batch, single = self.batch_of(obs)
        actions = self.agent.act_sampled(batch, generator).reshape(len(batch), *self.spaces.action_shape)
        return actions[0] if single else actions

    def batch_of(self, obs: Any) -> tuple[np.ndarray, bool]:
        """The observation(s) checked and as the agent reads them (packed, normalized with the frozen
        statistics), as a batch; and whether one observation was given."""
        if isinstance(obs, torch.Tensor):
            obs = obs.detach().cpu().numpy()
        obs = self.packed(obs)
        try:
            obs = np.asarray(obs)
        except (ValueError, TypeError) as error:   # ragged lists: numpy's own words, on one line
            raise ValueError(f"observations must be an array of numbers: {one_line(str(error))}") from None
        shape = self.spaces.obs_shape
        if obs.dtype.kind not in "biuf":
            raise ValueError(f"observations must be numbers (an array, a list or a tensor), got {obs.dtype} data")
        single = obs.shape == shape
        batch = obs[None] if single else obs
        if batch.ndim != len(shape) + 1 or batch.shape[1:] != shape or len(batch) == 0:
            raw = type(getattr(self.spaces.obs_space, "raw", None)).__name__
            packed = f" (its {raw} observations packed into bytes; give it the {raw.lower()} itself, or a list of " \
                     f"them)" if self.spaces.entries else ""
            raise ValueError(f"observations of shape {obs.shape}: this agent ({self.algo} on {self.env_id}) takes "
                             f"one of shape {shape} or a batch of shape (N, {', '.join(map(str, shape))}) with N >= 1"
                             + packed)
        finite = np.isfinite(batch) if batch.dtype.kind == "f" else None
        if finite is not None and not finite.all():   # a network maps them to NaN actions, or argmax to action 0
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            where = f"index {first[1:]}" if single else f"row {first[0]}, index {first[1:]}"
            raise ValueError(f"observations hold {int((~finite).sum())} NaN or infinite value(s) (the first at "
                             f"{where}: {batch[first]}); this agent ({self.algo} on {self.env_id}) acts only on "
                             f"finite observations")
        invalid = invalid_entries(self.spaces.entries, batch) if self.spaces.entries else \
            invalid_values(self.spaces.obs_space, batch)
        if invalid is not None:   # one-hot encodings' ranges
            raise ValueError(f"observations hold {invalid}; this agent ({self.algo} on {self.env_id}) acts only on "
                             f"observations of its space")
        if self.normalization is not None:
            batch = self.normalization.observations(batch, update=False)
        return batch, single

    def packed(self, obs: Any) -> Any:
        """A raw Dict or Tuple observation (a dict or tuple of its entries; for a batch, each entry batched along a
        first axis, or a list of raw observations) packed as the agent reads it (rlexp/envs/packing.py); anything
        else as it is (packed rows too: what the run's env gives with packing)."""
        raw = getattr(self.spaces.obs_space, "raw", None)
        kind = Mapping if isinstance(raw, gym.spaces.Dict) else tuple if isinstance(raw, gym.spaces.Tuple) else None
        if kind is None:
            return obs
        layout = Layout(self.spaces.entries, int(self.spaces.obs_shape[0]))
        if isinstance(obs, kind):
            return pack(layout, obs)
        if isinstance(obs, list) and obs and all(isinstance(o, kind) for o in obs):   # a list of raw observations
            return np.stack([pack(layout, o) for o in obs])
        return obs

    def act_on_env(self, obs: Any, generator: torch.Generator | None = None) -> np.ndarray:
        """`act` (or, given a `generator`, `act_sampled`) on what the run's env returned (rlexp eval, export's
        states): an observation `act` refuses is then the env's fault, an EnvFault (one line, exit 1), not the
        caller's ValueError."""
        try:
            return self.act(obs) if generator is None else self.act_sampled(obs, generator)
        except ValueError as error:
            raise EnvFault(f"{self.env_id} returned an observation the agent cannot act on: {error}") from None

    def make_env(self, **kwargs: Any) -> gym.Env:
        """The env the agent was trained on: its id, kwargs, wrappers and Atari preprocessing; `kwargs` (e.g.
        render_mode="human") are passed to gymnasium.make on top of the run's own. Dict and Tuple observations
        come raw (`act` packs them)."""
        return make_run_env(self.config, run_directory(self.checkpoint), pack=False, **kwargs)

    def make_packed_env(self, **kwargs: Any) -> gym.Env:
        """`make_env`, with Dict and Tuple observations packed into one array each, as replay stores them (what
        export checks and the t-SNE instrument stack)."""
        return make_run_env(self.config, run_directory(self.checkpoint), **kwargs)

    def policy_module(self) -> nn.Module:
        """The deterministic policy as one torch module on the CPU (a copy): a batch of raw observations in the
        env's dtype -> the env's actions (Dict and Tuple observations: a tuple of their entries, each batched, in
        the order of `spaces.entries`). What `rlexp export` writes."""
        from rlexp.deploy.policy import ExportedEntriesPolicy, ExportedPolicy, split_encoder
        from rlexp.envs.normalization import standardised

        obs_rms = self.normalization.obs_rms if self.normalization and self.normalization.settings.obs else None
        network = copy.deepcopy(self.agent.policy_network()).cpu().eval().requires_grad_(False)
        clip = self.normalization.settings.clip_obs if obs_rms is not None and self.normalization else 0.0
        if self.spaces.entries:   # one input per Dict/Tuple entry, its float entries standardised
            chosen = standardised(self.spaces.entries)
            floats = [i for i, entry in enumerate(self.spaces.entries) if entry in chosen]
            policy, encoder = split_encoder(network)
            return ExportedEntriesPolicy(policy, encoder, floats, obs_rms.mean if obs_rms else None,
                                         obs_rms.var if obs_rms else None, clip).eval()
        return ExportedPolicy(network, obs_rms.mean if obs_rms else None, obs_rms.var if obs_rms else None, clip,
                              frames=self.spaces.frames).eval()


def load(path: str | Path, checkpoint: str | None = None, device: str = "auto",
         seed: int | None = None) -> LoadedAgent:
    """The agent of a run directory (`checkpoint`: final, the default, or best) or of a checkpoint file, on
    `device` (cpu, cuda, cuda:N or auto). A file that is not an rlexp checkpoint, a damaged one, or one of another
    format is a one-line error (ConfigError or CheckpointError); nothing in the file is executed (weights_only loading).
    `seed` seeds the agent's exploration (default: the run's own generators as the checkpoint saved them)."""
    from rlexp.agents import registry
    from rlexp.agents.base import BuildContext
    from rlexp.config.compat import with_added_keys
    from rlexp.config.device import resolve_device
    from rlexp.config.schema import NormalizeConfig
    from rlexp.config.typed import typed
    from rlexp.envs import describe_spaces
    from rlexp.envs.normalization import make_normalization, statistics_shape
    from rlexp.io.checkpoints import load_checkpoint
    from rlexp.networks.user_torso import resolve_torso

    seed = check_load_arguments(path, checkpoint, device, seed)
    file = checkpoint_path(path, checkpoint)
    resolved = resolve_device(device)
    bundle = load_checkpoint(file)
    try:
        config = with_added_keys(bundle["config"])   # a run made before a key existed: its old meaning
        spec = registry.get(config["algo"]["name"])
        step = int(bundle["step"])
        env = make_run_env(config, run_directory(file))
        try:
            spaces = describe_spaces(env.observation_space, env.action_space, config["env"]["id"],
                                     image_channels_first=config["network"].get("image", {}).get("channels_first"),
                                     image_enabled=config["network"].get("image", {}).get("enabled", "auto"),
                                     image_cnn=config["network"].get("image", {}).get("cnn", "nature"),
                                     stacked=bool(config["env"].get("atari")),
                                     torso=(config["network"].get("torso") or {}).get("_target_") is not None)
        finally:
            env.close()
        # network.torso's module: imported under rlexp/config/trust.py's rule, as the env's
        torso = resolve_torso(config["network"].get("torso"), run_directory(file))
        check_agent_size(file, spec.parameters(typed(config["algo"], spec.schema), spaces,
                                               tuple(config["network"]["hidden_sizes"]), torso), bundle["agent"])
        # Building draws initial weights (replaced by the saved ones) from torch's global generator: leave the
        # caller's random streams as they were.
        with torch.random.fork_rng(devices=[resolved] if resolved.type == "cuda" else []):
            torch.manual_seed(config["seed"] if seed is None else seed)
            agent = spec.build(typed(config["algo"], spec.schema), BuildContext(
                spaces=spaces, hidden_sizes=tuple(config["network"]["hidden_sizes"]),
                total_steps=config["total_steps"], planned_updates=1, num_envs=1, device=resolved,
                seed=config["seed"] if seed is None else seed, activation=config["network"].get("activation", "relu"),
                torso=torso))
        state = bundle["agent"]
        if seed is not None:   # the saved networks, with the exploration state the builder seeded
            fresh = agent.state_dict()
            exploration = agent.exploration_state
            state = {**{k: v for k, v in state.items() if k not in exploration},
                     **{k: fresh[k] for k in exploration if k in fresh}}
        agent.load_state_dict(state)
        # The observation statistics the agent was trained on, frozen (a run made before env.normalize has none).
        normalization = None
        if "normalization" in bundle:
            normalization = make_normalization(typed(config["env"]["normalize"], NormalizeConfig),
                                               config["algo"]["gamma"], spaces.obs_shape, 1, spaces.entries)
            if normalization is not None:
                normalization.load_state_dict(bundle["normalization"])
                check_statistics(file, normalization, statistics_shape(spaces.obs_shape, spaces.entries))
    except (ConfigError, RunFailure):   # (an env that cannot be made is a RunFailure: not the agent's misfit below)
        raise
    except (KeyError, MissingMandatoryValue) as error:   # a config or agent state this version cannot read
        missing = f"'{error.full_key}'" if isinstance(error, MissingMandatoryValue) else str(error)
        raise ConfigError(f"{file} lacks {missing}, which this version of rlexp needs to build its agent (another "
                          f"version wrote it); load it with the version that trained it") from None
    except RuntimeError as error:  # torch's load_state_dict: saved tensors that do not fit the agent built here
        raise ConfigError(f"{file}: the saved agent does not fit the one its config builds here "
                          f"({' '.join(str(error).split())[:200]}); load it with the version that trained it") \
            from None
    except (TypeError, ValueError) as error:   # a saved value of the wrong type: an altered file
        raise ConfigError(f"{file}: its config does not build an agent ({type(error).__name__}: "
                          f"{one_line(str(error))[:200]}); the file was altered, or another version wrote it") from None
    return LoadedAgent(config=config, checkpoint=file, step=step, device=resolved, spaces=spaces, agent=agent,
                       normalization=normalization)

"""Stepping the training envs: actions out, transitions back, each env's episode kept track of.

The envs are a gymnasium vector env (rlexp/envs/make.py: SAME_STEP autoreset) or EnvPool's, adapted to the same
interface (rlexp/envs/envpool.py). Where the envs step elsewhere (AsyncVectorEnv's worker processes, EnvPool's
threads), `send` returns at once and the envs step until `receive`: whatever the runner does in between (a round
of updates) overlaps with the stepping. With `env.normalize` the collector hands the agent normalized observations
and scaled rewards (rlexp/envs/normalization.py), the final observations of ended episodes included; the episode
returns it reports are the envs' raw ones.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rlexp.envs.checks import EnvCallError
from rlexp.envs.normalization import Normalization
from rlexp.runners.faults import check_transitions

log = logging.getLogger("rlexp")


@dataclass(frozen=True)
class Transitions:
    """One vector step: a transition per env (leading env axis), and the episodes that ended in it."""

    obs: np.ndarray            # s_t (normalized, with env.normalize.obs)
    actions: np.ndarray        # a_t
    rewards: np.ndarray        # r_t as training sees it (Atari: clipped; with env.normalize.reward: scaled)
    next_obs: np.ndarray       # s_{t+1}: the episode's last observation where it ended
    terminations: np.ndarray   # a true terminal state (Atari: or a lost life, if so configured)
    truncations: np.ndarray    # a time limit: not terminal, targets still bootstrap
    ended: np.ndarray          # the env's episode ended here (it has been reset)
    episode_returns: np.ndarray   # of the episodes that ended, in env order (raw rewards: the game score)
    episode_lengths: np.ndarray


def step_info(infos: dict[str, Any], key: str, ended: np.ndarray, default: np.ndarray) -> np.ndarray:
    """A per-env value an env wrapper reports in `info[key]`: for an env whose episode ended this step, the
    vector env moved its step info to `info["final_info"]` (the top level is the new episode's reset info)."""
    values = default.copy()
    if key in infos:
        present = infos[f"_{key}"]
        values[present] = infos[key][present]
    final = infos.get("final_info")
    if final is not None and key in final:
        present = final[f"_{key}"] & ended
        values[present] = final[key][present]
    return values


class Collector:
    def __init__(self, envs: Any, seed: int, env_id: str, normalization: Normalization | None = None,
                 stop_signal: Callable[[], int | None] | None = None) -> None:
        self.envs = envs
        if stop_signal is not None and hasattr(envs, "stop_requested"):   # async workers: a wait ends on a signal
            envs.stop_requested = stop_signal
        self.normalization = normalization
        self.env_id = env_id
        self.num_envs = envs.num_envs
        self.seed = seed
        self.overlaps = hasattr(envs, "step_async")   # SyncVectorEnv steps in `step`, in this process
        # Random actions (before learning starts) come from each env's own copy of its action space.
        self.action_spaces = [copy.deepcopy(envs.single_action_space) for _ in range(self.num_envs)]
        self.obs: np.ndarray | None = None
        self.episode_returns = np.zeros(self.num_envs, dtype=np.float64)
        self.episode_lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._actions: np.ndarray | None = None

    def start(self) -> None:
        """Reset every env, env i with seed + i (and its action space too)."""
        for i, space in enumerate(self.action_spaces):
            space.seed(self.seed + i)
        try:
            obs, _ = self.envs.reset(seed=self.seed)
        except EnvCallError as error:
            raise error.at(0, self.num_envs) from None
        self.obs = self._observations(np.array(obs), update=True)

    def random_actions(self) -> np.ndarray:
        return np.array([space.sample() for space in self.action_spaces])

    def send(self, actions: np.ndarray) -> None:
        """Start a step; with async envs it runs while the caller goes on, until `receive`."""
        self._actions = actions
        if self.overlaps:
            self.envs.step_async(actions)

    def receive(self, step: int) -> Transitions:
        """Finish the step (`step`: the env step count it brings the run to)."""
        actions = self._actions
        assert actions is not None and self.obs is not None, "start(), then send() the step's actions"
        try:
            if self.overlaps:
                next_obs, rewards, terminated, truncated, infos = self.envs.step_wait()
            else:
                next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
        except EnvCallError as error:   # one line: the env, its index, the step, what it raised or returned
            raise error.at(step, self.num_envs) from None
        next_obs = np.array(next_obs)   # the vector env's buffer: the next step overwrites it
        ended = terminated | truncated
        final_obs = next_obs
        if ended.any():
            final_obs = next_obs.copy()
            for env in np.flatnonzero(ended):
                final_obs[env] = infos["final_obs"][env]
        check_transitions(step, actions, final_obs, rewards)
        self.episode_returns += rewards
        self.episode_lengths += 1
        training_rewards = step_info(infos, "training_reward", ended, rewards)
        if self.normalization is not None:
            training_rewards = self.normalization.rewards(training_rewards, ended)
            next_obs = self._observations(next_obs, update=True)
            final_obs = next_obs if not ended.any() else \
                np.where(ended.reshape(-1, *[1] * (next_obs.ndim - 1)),
                         self._observations(final_obs, update=False), next_obs)
        transitions = Transitions(
            obs=self.obs, actions=actions,
            rewards=training_rewards,
            next_obs=final_obs,
            terminations=terminated | step_info(infos, "life_lost", ended, np.zeros(self.num_envs, dtype=bool)),
            truncations=truncated, ended=ended,
            episode_returns=self.episode_returns[ended], episode_lengths=self.episode_lengths[ended])
        self.episode_returns[ended] = 0.0
        self.episode_lengths[ended] = 0
        self.obs = next_obs
        return transitions

    def _observations(self, obs: np.ndarray, update: bool) -> np.ndarray:
        return obs if self.normalization is None else self.normalization.observations(obs, update)

    def close(self) -> None:
        self.envs.close()

    # --- exact resume -----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Each env's current episode (how it began, its actions since, for replaying it), its return and length
        so far, and the action spaces' generators."""
        records = self.envs.call("episode_record")
        return {
            "obs": torch.as_tensor(np.asarray(self.obs)),
            "episode_returns": torch.from_numpy(self.episode_returns.copy()),
            "episode_lengths": torch.from_numpy(self.episode_lengths.copy()),
            "episodes": [{"start": r["start"], "actions": torch.as_tensor(r["actions"]),
                          "obs": torch.as_tensor(r["obs"]), "return": r["return"]} for r in records],
            "action_spaces": [space.np_random.bit_generator.state for space in self.action_spaces],
            **({"normalization": self.normalization.state_dict()} if self.normalization is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any], episodes_so_far: int, step: int = 0) -> np.ndarray:
        """Bring every env back to the same point of the same episode by replaying it. An env whose replay does
        not reproduce the recorded episode starts a fresh one instead (with a warning: the run goes on correctly,
        but not bit for bit as the uninterrupted one). Returns the mask of those envs."""
        for space, rng_state in zip(self.action_spaces, state["action_spaces"]):
            space.seed(0)
            space.np_random.bit_generator.state = rng_state
        self.episode_returns = state["episode_returns"].numpy().copy()
        self.episode_lengths = state["episode_lengths"].numpy().copy()
        records = [({"start": e["start"], "actions": e["actions"].numpy(), "obs": e["obs"].numpy(),
                     "return": e["return"]}, self.seed + episodes_so_far + 1 + i)
                   for i, e in enumerate(state["episodes"])]
        if self.normalization is not None:
            self.normalization.load_state_dict(state["normalization"])
        self.envs.set_attr("resume_from", records)
        try:
            resumed = self.envs.call("resume")
        except EnvCallError as error:
            raise error.at(step, self.num_envs, " (replaying its episode to resume)") from None
        self.obs = state["obs"].numpy().copy()
        fresh = [i for i, (_, replayed) in enumerate(resumed) if not replayed]
        for i, (obs, _) in enumerate(resumed):   # the same statistics as when saved: the same normalized rows
            self.obs[i] = self._observations(np.asarray(obs)[None], update=False)[0]
        if fresh:
            self.episode_returns[fresh] = 0.0
            self.episode_lengths[fresh] = 0
            which = f" (env {', '.join(map(str, fresh))} of {self.num_envs})" if self.num_envs > 1 else ""
            log.warning("%s did not replay its current episode identically%s (its dynamics are not a function of "
                        "its seed and actions); the resumed run starts a fresh episode, so it will not match an "
                        "uninterrupted one exactly", self.env_id, which)
        started = np.zeros(self.num_envs, dtype=bool)
        started[fresh] = True
        return started

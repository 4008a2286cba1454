"""EnvPool (https://github.com/sail-sg/envpool) as a vector env: its envs step in C++ threads.

`env.vectorization=envpool` trains on EnvPool's build of the same task (ALE/<Game>-v5 with the DQN paper's
preprocessing, the MuJoCo -v5 tasks, classic control), through an adapter that gives the collector what a
gymnasium vector env gives it:

- SAME_STEP autoreset: EnvPool resets an env that ended at the *next* step (NEXT_STEP, the action ignored);
  the adapter resets it at once instead, and puts its last observation in `info["final_obs"]`.
- Exact resume: EnvPool seeds env i once, when the pool is made (seed + i), and its generator moves only at
  resets (no-op starts, reset noise). So an env's current episode is rebuilt by making the pool with the same
  seeds, resetting the env as many times as it had been reset, and replaying the episode's actions on that env
  alone.
- Atari: EnvPool's own preprocessing, set to the paper's (no-op starts, a 4-frame skip with the max of the last
  two frames, 84x84 grayscale by area interpolation, 4 stacked frames, no fire reset, no sticky actions); it
  matches gymnasium's AtariPreprocessing frame for frame, but draws its no-ops from another generator, so a seed
  gives another run than with `sync`/`async`. Rewards come back raw: clipping and life loss are done here, as
  TrainingSignals does for gymnasium.
- Evaluation stays on a gymnasium env. (EnvPool's MuJoCo is its own build of MuJoCo: the dynamics agree with
  gymnasium's to floating-point precision, not bit for bit.)
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from rlexp.envs.atari import AtariSettings
from rlexp.errors import ConfigError, needs_extra

#: Atari options of gymnasium's ALE envs that EnvPool has under another name.
_ALE_OPTIONS = {"repeat_action_probability": "repeat_action_probability", "full_action_space": "full_action_space"}


def envpool_task(env_id: str, kwargs: dict[str, Any], atari: AtariSettings | None) -> tuple[str, dict[str, Any]]:
    """EnvPool's task id and options for a gymnasium env id and its make() keyword arguments."""
    with needs_extra("envpool", "env.vectorization=envpool needs EnvPool (fix: $fix)"):
        import envpool
    task = env_id.removeprefix("ALE/")
    if task not in envpool.list_all_envs():
        raise ConfigError(f"env.vectorization=envpool: EnvPool has no {task!r} (env.id={env_id}); use "
                          f"env.vectorization=sync or async")
    if atari is None:
        return task, dict(kwargs)
    unknown = sorted(set(kwargs) - {"frameskip", *_ALE_OPTIONS})
    if unknown or kwargs.get("frameskip", 1) != 1:
        raise ConfigError(f"env.vectorization=envpool: env.kwargs {unknown or ['frameskip']} have no EnvPool "
                          f"equivalent (frames are skipped by env.atari.frame_skip); use sync or async")
    options = {_ALE_OPTIONS[key]: value for key, value in kwargs.items() if key in _ALE_OPTIONS}
    options.update(episodic_life=False, reward_clip=False, use_fire_reset=False, gray_scale=True,
                   noop_max=atari.noop_max, frame_skip=atari.frame_skip, stack_num=atari.frame_stack,
                   img_height=atari.screen_size, img_width=atari.screen_size)
    return task, options


class EnvPoolVectorEnv:
    """An EnvPool pool of `num_envs` envs with the interface rlexp's collector uses of a gymnasium vector env."""

    def __init__(self, env_id: str, kwargs: dict[str, Any], atari: AtariSettings | None, num_envs: int,
                 seed: int) -> None:
        import envpool

        task, options = envpool_task(env_id, kwargs, atari)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gymnasium's notes on EnvPool's float64 bounds
            self.pool = envpool.make_gymnasium(task, num_envs=num_envs, batch_size=num_envs,
                                               env_seed=[seed + i for i in range(num_envs)], **options)
        self.num_envs = num_envs
        self.seed = seed
        self.single_observation_space = self.pool.observation_space
        self.single_action_space = self.pool.action_space
        self.atari = atari
        self.resets = np.zeros(num_envs, dtype=np.int64)      # per env: resets since the pool was made
        self.actions: list[list[np.ndarray]] = [[] for _ in range(num_envs)]   # each current episode's actions
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lives = np.zeros(num_envs, dtype=np.int64)
        self.obs: np.ndarray | None = None
        self.resume_from: list[tuple[dict[str, Any], int]] | None = None

    # --- the vector env interface ---------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None and seed != self.seed:
            raise ValueError(f"EnvPool seeds its envs when the pool is made (seed {self.seed}), not at reset")
        self.obs, info = self.pool.reset()
        self.resets[:] = 1
        self.actions = [[] for _ in range(self.num_envs)]
        self.returns[:] = 0.0
        self.lives = np.asarray(info.get("lives", np.zeros(self.num_envs)), dtype=np.int64)
        return self.obs, {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.pool.send(self._actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, rewards, terminated, truncated, info = self.pool.recv()
        obs, rewards = np.array(obs), np.asarray(rewards, dtype=np.float64)
        terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        for env, action in enumerate(self._actions):
            self.actions[env].append(np.array(action, copy=True))
        self.returns += rewards
        infos: dict[str, Any] = {}
        if self.atari is not None:
            training = {}
            if self.atari.clip_rewards:
                training["training_reward"] = np.sign(rewards)
            if self.atari.terminal_on_life_loss:
                lives = np.asarray(info["lives"], dtype=np.int64)
                training["life_lost"] = lives < self.lives
                self.lives = lives
            infos.update(training)
            infos.update({f"_{key}": np.ones(self.num_envs, dtype=bool) for key in training})
        ended = terminated | truncated
        if ended.any():
            ids = np.flatnonzero(ended)
            final = np.empty(self.num_envs, dtype=object)
            for ended_env in ids:
                final[ended_env] = obs[ended_env].copy()
            infos.update(final_obs=final, _final_obs=ended.copy())
            infos["final_info"] = {key: value for key, value in infos.items() if key != "final_obs"
                                   and not key.startswith("_final")}
            obs[ids] = self._reset(ids)
        self.obs = obs
        return obs, rewards, terminated, truncated, infos

    def _reset(self, ids: np.ndarray) -> np.ndarray:
        obs, info = self.pool.reset(np.asarray(ids, dtype=np.int32))
        self.resets[ids] += 1
        self.returns[ids] = 0.0
        for env in ids:
            self.actions[env] = []
        if "lives" in info:
            self.lives[ids] = np.asarray(info["lives"], dtype=np.int64)
        return obs

    def close(self) -> None:
        self.pool.close()

    # --- exact resume: the collector's calls -----------------------------------------------------------------

    def call(self, name: str) -> tuple[Any, ...]:
        if name == "episode_record":
            assert self.obs is not None, "reset() first"
            return tuple({"start": {"resets": int(self.resets[env])},
                          "actions": np.stack(self.actions[env]) if self.actions[env] else np.zeros((0,)),
                          "obs": self.obs[env].copy(), "return": float(self.returns[env])}
                         for env in range(self.num_envs))
        if name == "resume":
            return self._resume()
        raise AttributeError(name)

    def set_attr(self, name: str, values: list[Any]) -> None:
        if name != "resume_from":
            raise AttributeError(name)
        self.resume_from = list(values)

    def _resume(self) -> tuple[tuple[np.ndarray, bool], ...]:
        """Rebuild each env's episode in this fresh pool: as many resets as it had, then its actions, env by env."""
        assert self.resume_from is not None, "set resume_from first"
        records, self.resume_from = self.resume_from, None
        self.reset()
        assert self.obs is not None
        results = []
        for env, (record, _) in enumerate(records):
            ids = np.array([env], dtype=np.int32)
            obs = self.obs[env]
            for _ in range(int(record["start"]["resets"]) - 1):
                obs = self._reset(ids)[0]
            replayed = True
            for action in record["actions"]:
                obs, reward, terminated, truncated, info = self.pool.step(np.asarray(action)[None], ids)
                obs = obs[0]
                if "lives" in info:
                    self.lives[env] = int(info["lives"][0])
                self.actions[env].append(np.array(action, copy=True))
                self.returns[env] += float(reward[0])
                if terminated[0] or truncated[0]:
                    replayed = False
                    break
            if not (replayed and np.array_equal(obs, record["obs"]) and self.returns[env] == record["return"]):
                replayed = False
                obs = self._reset(ids)[0]   # seeds are the pool's: a fresh episode is the next reset
            self.obs[env] = obs
            results.append((obs, replayed))
        return tuple(results)

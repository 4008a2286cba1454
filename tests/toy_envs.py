"""Small gymnasium envs with MultiDiscrete and MultiBinary actions, and with Dict and Tuple observations, for the tests.

Selected as a user selects any env of their own: `rlexp train env.id=tests.toy_envs:MultiChoice-v0` (gymnasium
imports the module before the `:`, which registers the ids below).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

EPISODE = 8   # steps per episode (a time limit)


class MultiChoice(gym.Env):
    """Each step shows a target, one choice per component (one-hot per component for MultiDiscrete, the bits for
    MultiBinary), drawn anew each step; the reward is the number of the action's components that match it. A
    uniformly random policy matches 1/n of a component's n choices; the optimum matches all."""

    def __init__(self, nvec: tuple[int, ...] = (3, 3), binary: int | None = None) -> None:
        self.nvec = np.full(binary, 2) if binary is not None else np.asarray(nvec)
        self.action_space: gym.Space = gym.spaces.MultiBinary(binary) if binary is not None else \
            gym.spaces.MultiDiscrete(self.nvec)
        size = binary if binary is not None else int(self.nvec.sum())
        self.observation_space = gym.spaces.Box(0.0, 1.0, (size,), np.float32)
        self.binary = binary is not None
        self.target = np.zeros(len(self.nvec), np.int64)

    def _obs(self) -> np.ndarray:
        self.target = self.np_random.integers(self.nvec)
        if self.binary:
            return self.target.astype(np.float32)
        obs = np.zeros(int(self.nvec.sum()), np.float32)
        obs[np.concatenate([[0], np.cumsum(self.nvec)[:-1]]) + self.target] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(np.asarray(action, dtype=self.action_space.dtype)) or \
                np.shape(action) != self.action_space.shape:
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        reward = float((np.asarray(action) == self.target).sum())
        return self._obs(), reward, False, False, {}


gym.register(id="MultiChoice-v0", entry_point=MultiChoice, max_episode_steps=EPISODE)
gym.register(id="MultiSwitch-v0", entry_point=MultiChoice, kwargs={"binary": 3}, max_episode_steps=EPISODE)


class GoalPoint(gym.Env):
    """A goal-conditioned point with Dict observations (Box vectors and a Discrete entry, as gymnasium-robotics'
    and most custom envs have): `position` and `goal` in [-1, 1]^2, `speed` a Discrete(3) step size (1, 2 or 3
    tenths, drawn each episode). Actions move the point (Box(-1, 1, (2,)), or Discrete(4): up, down, left, right,
    when `discrete`); the reward is minus the distance to the goal after the move."""

    def __init__(self, discrete: bool = False) -> None:
        vector = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = gym.spaces.Dict({"position": vector, "goal": vector, "speed": gym.spaces.Discrete(3)})
        self.action_space: gym.Space = gym.spaces.Discrete(4) if discrete else gym.spaces.Box(-1.0, 1.0, (2,),
                                                                                               np.float32)
        self.position = np.zeros(2, np.float32)
        self.goal = np.zeros(2, np.float32)
        self.speed = 0

    def _obs(self) -> dict[str, Any]:
        return {"position": self.position.copy(), "goal": self.goal.copy(), "speed": self.speed}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.goal = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.speed = int(self.np_random.integers(3))
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict[str, Any]]:
        if isinstance(self.action_space, gym.spaces.Discrete):
            move = np.array([[0, 1], [0, -1], [-1, 0], [1, 0]], np.float32)[int(action)]
        else:
            move = np.clip(np.asarray(action, np.float32), -1, 1)
        self.position = np.clip(self.position + 0.1 * (self.speed + 1) * move, -1, 1).astype(np.float32)
        return self._obs(), -float(np.linalg.norm(self.position - self.goal)), False, False, {}


class BitFlipping(gym.Env):
    """The HER paper's bit-flipping task (Andrychowicz et al. 2017, section 3.1), goal-conditioned as
    gymnasium-robotics' envs are: Dict observations with `observation` (the n bits), `achieved_goal` (the same bits)
    and `desired_goal` (the target bits), and `compute_reward`. An action flips one bit (Discrete(n)), or,
    `continuous`, every bit whose action component is positive (Box(-1, 1, (n,)), as SB3's BitFlippingEnv). The
    reward is 0 when the bits match the target, which ends the episode, and -1 otherwise; an episode lasts n steps
    at most."""

    def __init__(self, n_bits: int = 4, continuous: bool = False) -> None:
        bits = gym.spaces.Box(0.0, 1.0, (n_bits,), np.float32)
        self.observation_space = gym.spaces.Dict({"observation": bits, "achieved_goal": bits, "desired_goal": bits})
        self.action_space: gym.Space = gym.spaces.Box(-1.0, 1.0, (n_bits,), np.float32) if continuous else \
            gym.spaces.Discrete(n_bits)
        self.state = np.zeros(n_bits, np.float32)
        self.goal = np.zeros(n_bits, np.float32)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """0 where the goals match, -1 elsewhere, for one goal or a batch."""
        return -np.any(np.asarray(achieved_goal) != np.asarray(desired_goal), axis=-1).astype(np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"observation": self.state.copy(), "achieved_goal": self.state.copy(), "desired_goal": self.goal.copy()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        n = self.state.size
        self.state = self.np_random.integers(2, size=n).astype(np.float32)
        self.goal = self.np_random.integers(2, size=n).astype(np.float32)
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict[str, Any]]:
        if isinstance(self.action_space, gym.spaces.Discrete):
            self.state[int(action)] = 1.0 - self.state[int(action)]
        else:
            flip = np.asarray(action) > 0
            self.state[flip] = 1.0 - self.state[flip]
        reward = float(self.compute_reward(self.state, self.goal, {}))
        return self._obs(), reward, reward == 0.0, False, {}


class PairSum(gym.Env):
    """Tuple(Discrete(3), Discrete(3)) observations, like Blackjack's: the reward is 1 when the action (Discrete(3))
    is the sum of the pair modulo 3, else 0."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Discrete(3)))
        self.action_space = gym.spaces.Discrete(3)
        self.pair = (0, 0)

    def _obs(self) -> tuple[int, int]:
        self.pair = (int(self.np_random.integers(3)), int(self.np_random.integers(3)))
        return self.pair

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[tuple, dict]:
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action: Any) -> tuple[tuple, float, bool, bool, dict[str, Any]]:
        reward = float(int(action) == sum(self.pair) % 3)
        return self._obs(), reward, False, False, {}


class LitCorner(gym.Env):
    """Dict observations with a channel-last uint8 image (36x36x3, the smallest the Nature CNN reads) and a
    Discrete step counter: one of the four corners is lit; the reward is 1 for the action (Discrete(4)) that
    names it."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (36, 36, 3), np.uint8),
                                                  "step": gym.spaces.Discrete(EPISODE + 1)})
        self.action_space = gym.spaces.Discrete(4)
        self.corner, self.steps = 0, 0

    def _obs(self) -> dict[str, Any]:
        self.corner = int(self.np_random.integers(4))
        image = np.zeros((36, 36, 3), np.uint8)
        rows, cols = (slice(0, 18), slice(18, 36))[self.corner // 2], (slice(0, 18), slice(18, 36))[self.corner % 2]
        image[rows, cols] = 255
        return {"image": image, "step": self.steps}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.steps = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict[str, Any]]:
        reward = float(int(action) == self.corner)
        self.steps += 1
        return self._obs(), reward, False, False, {}


gym.register(id="GoalPoint-v0", entry_point=GoalPoint, max_episode_steps=EPISODE)
gym.register(id="GoalPointDiscrete-v0", entry_point=GoalPoint, kwargs={"discrete": True}, max_episode_steps=EPISODE)
gym.register(id="PairSum-v0", entry_point=PairSum, max_episode_steps=EPISODE)
gym.register(id="BitFlipping-v0", entry_point=BitFlipping, max_episode_steps=4)
gym.register(id="BitFlippingContinuous-v0", entry_point=BitFlipping, kwargs={"continuous": True}, max_episode_steps=4)
gym.register(id="LitCorner-v0", entry_point=LitCorner, max_episode_steps=EPISODE)

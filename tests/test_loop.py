"""The loop with real envs and agents at tiny budgets."""

from pathlib import Path

import numpy as np
import torch

from rlexp.agents import DQN
from rlexp.buffers import ReplayBuffer
from rlexp.checkpoint import CheckpointManager
from rlexp.envs import make_env
from rlexp.loop import LoopSettings, run
from rlexp.metrics import RunLogger


def settings(**overrides) -> LoopSettings:
    values = dict(total_steps=300, learning_starts=50, train_freq=4, gradient_steps=1, batch_size=16,
                  eval_every=100, eval_episodes=2, checkpoint_every=100, log_every=10, seed=0)
    values.update(overrides)
    return LoopSettings(**values)


def dqn(total_steps: int) -> DQN:
    torch.manual_seed(0)
    return DQN(4, 2, hidden_sizes=[16], lr=1e-3, gamma=0.99, tau=1.0, target_update_interval=10,
               exploration_fraction=0.5, exploration_initial_eps=1.0, exploration_final_eps=0.05,
               max_grad_norm=10.0, lr_schedule="constant", total_steps=total_steps, total_updates=100, device=torch.device("cpu"),
               rng=np.random.default_rng(0))


def train(tmp_path: Path, env_kwargs: dict, **overrides):
    s = settings(**overrides)
    agent = dqn(s.total_steps)
    buffer = ReplayBuffer(s.total_steps, (4,), (), True, torch.device("cpu"), seed=0)
    logger = RunLogger(tmp_path, s.total_steps, 0, "none", {"algo": {"name": "dqn"}})
    result = run(agent, make_env("CartPole-v1", env_kwargs), make_env("CartPole-v1", env_kwargs), buffer, s,
                 logger, CheckpointManager(tmp_path / "checkpoints", keep=2), lambda step: {"step": step})
    logger.close()
    return agent, buffer, result


def test_time_limits_are_not_stored_as_terminations(tmp_path):
    # Every episode is cut by a 5-step time limit, long before CartPole can fall: nothing may be terminal.
    _, buffer, result = train(tmp_path, {"max_episode_steps": 5})
    assert result.episodes == 300 // 5
    assert buffer.storage["terminations"].sum() == 0


def test_true_terminations_are_stored(tmp_path):
    _, buffer, result = train(tmp_path, {})
    terminal = int(buffer.storage["terminations"].sum())
    assert terminal > 0 and terminal <= result.episodes


def test_loop_updates_evaluates_and_checkpoints(tmp_path):
    agent, buffer, result = train(tmp_path, {})
    assert len(buffer) == 300
    assert agent.n_updates == len([t for t in range(51, 301) if t % 4 == 0])  # every 4th step after warm-up
    assert result.eval_returns.shape == (2,) and result.steps == 300 and result.sps > 0
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best.pt", "final.pt", "step_100.pt", "step_200.pt"]

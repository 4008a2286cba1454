"""The loop with real envs and agents at tiny budgets."""

from pathlib import Path

import numpy as np
import torch

import pytest

from rlexp.agents import DQN, TD3
from rlexp.buffers import ReplayBuffer
from rlexp.checkpoint import CheckpointManager, load_checkpoint
from rlexp.envs import make_env
from rlexp.errors import TrainingInterrupted
from rlexp.faults import StopRequest
from rlexp.loop import LoopSettings, run
from rlexp.metrics import RunLogger
from rlexp.noise import OrnsteinUhlenbeckNoise


def settings(**overrides) -> LoopSettings:
    values = dict(total_steps=300, learning_starts=50, train_freq=4, gradient_steps=1, batch_size=16,
                  eval_every=100, eval_episodes=2, checkpoint_every=100, log_every=10, seed=0)
    values.update(overrides)
    return LoopSettings(**values)


def dqn(total_steps: int) -> DQN:
    torch.manual_seed(0)
    return DQN(4, 2, hidden_sizes=[16], lr=1e-3, tau=1.0, target_update_interval=10,
               exploration_fraction=0.5, exploration_initial_eps=1.0, exploration_final_eps=0.05,
               max_grad_norm=10.0, lr_schedule="constant", total_steps=total_steps, total_updates=100, device=torch.device("cpu"),
               rng=np.random.default_rng(0))


META = {"algo": "dqn", "env_id": "CartPole-v1", "config": {}}


def train(tmp_path: Path, env_kwargs: dict, updates_at: list[int] | None = None, **overrides):
    """A tiny DQN run on CartPole; `updates_at`, when given, receives the env step of every update."""
    s = settings(**overrides)
    agent = dqn(s.total_steps)
    buffer = ReplayBuffer(s.total_steps, (4,), (), True, torch.device("cpu"), seed=0)
    if updates_at is not None:
        update = agent.update

        def recorded(batch):
            updates_at.append(len(buffer))  # the buffer holds every step so far
            return update(batch)
        agent.update = recorded
    logger = RunLogger(tmp_path, s.total_steps, 0, "none", {"algo": {"name": "dqn"}})
    result = run(agent, make_env("CartPole-v1", env_kwargs), make_env("CartPole-v1", env_kwargs), buffer, s,
                 logger, CheckpointManager(tmp_path / "checkpoints", keep=2), META, StopRequest())
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
    assert names == ["best.pt", "final.pt", "step_200.pt", "step_300.pt"]  # keep=2; the end is resumable too


def test_episode_rounds_make_one_update_per_step_collected_at_each_episode_end(tmp_path):
    # 5-step episodes and learning from step 53: the first round, at step 55, counts steps 51-55, as SB3 does.
    updates_at = []
    train(tmp_path, {"max_episode_steps": 5}, updates_at, learning_starts=52, train_freq=1,
          train_freq_unit="episode", gradient_steps=-1)
    assert updates_at == [end for end in range(55, 301, 5) for _ in range(5)]


def test_episode_rounds_of_a_fixed_size(tmp_path):
    updates_at = []
    train(tmp_path, {"max_episode_steps": 5}, updates_at, learning_starts=52, train_freq=2,
          train_freq_unit="episode", gradient_steps=3)
    assert updates_at == [end for end in range(60, 301, 10) for _ in range(3)]  # every second episode's end


def test_minus_one_gradient_steps_in_step_rounds_is_train_freq_updates(tmp_path):
    updates_at = []
    train(tmp_path, {}, updates_at, learning_starts=50, train_freq=4, gradient_steps=-1)
    assert updates_at == [step for step in range(52, 301, 4) for _ in range(4)]


def td3(total_steps: int) -> TD3:
    torch.manual_seed(0)
    noise = OrnsteinUhlenbeckNoise(1, 0.5, 0.15, np.random.default_rng(0))  # stateful noise must resume too
    return TD3(3, np.array([-2.0]), np.array([2.0]), hidden_sizes=[16], actor_lr=1e-3, critic_lr=1e-3,
               tau=0.01, policy_delay=2, target_noise=0.2, target_noise_clip=0.5, n_critics=2,
               exploration_noise=noise, device=torch.device("cpu"))


def run_pendulum(directory: Path, total_steps: int, stop_after: int | None = None,
                 resume: dict | None = None, **overrides) -> TD3:
    """TD3 on Pendulum (200-step episodes, so checkpoints fall mid-episode), optionally stopped or resumed."""
    s = settings(**{"total_steps": total_steps, "learning_starts": 60, "train_freq": 1, "eval_every": 150,
                    "checkpoint_every": 70, **overrides})
    agent = td3(450)  # built for the full run, so its schedules do not depend on where it stops
    if resume is not None:
        agent.load_state_dict(resume["agent"])
    buffer = ReplayBuffer(450, (3,), (1,), False, torch.device("cpu"), seed=0)
    start = resume["step"] if resume else 0
    logger = RunLogger(directory, total_steps, start, "none", {"algo": {"name": "td3"}})

    class StopAt(StopRequest):
        """Stands for a SIGINT arriving during step `stop_after`: the loop reads `signum` once per step."""

        step = start

        @property
        def signum(self):
            self.step += 1
            return 2 if stop_after is not None and self.step >= stop_after else None

        @signum.setter
        def signum(self, value):
            pass

    try:
        run(agent, make_env("Pendulum-v1"), make_env("Pendulum-v1"), buffer, s, logger,
            CheckpointManager(directory / "checkpoints", 10), META, StopAt(), resume)
    finally:
        logger.close()
    return agent


def parameters(agent: TD3) -> list[torch.Tensor]:
    return [*agent.actor.parameters(), *agent.critic.parameters(), *agent.actor_target.parameters(),
            *agent.critic_target.parameters()]


@pytest.mark.parametrize("rounds", [{}, {"train_freq_unit": "episode", "gradient_steps": -1}],
                         ids=["step", "episode"])
def test_resuming_from_any_checkpoint_ends_where_the_uninterrupted_run_ends(tmp_path, rounds):
    # Episode rounds: every checkpoint falls mid-round, whose steps so far the resumed run must still count.
    reference = run_pendulum(tmp_path / "reference", 450, **rounds)
    checkpoints = sorted((tmp_path / "reference" / "checkpoints").glob("step_*.pt"),
                         key=lambda p: int(p.stem.split("_")[1]))
    assert [p.name for p in checkpoints] == ["step_70.pt", "step_140.pt", "step_210.pt", "step_280.pt",
                                             "step_350.pt", "step_420.pt", "step_450.pt"]
    for path in checkpoints[:-1]:  # each one mid-episode, some before learning starts, one after an eval
        resumed = run_pendulum(tmp_path / path.stem, 450, resume=load_checkpoint(path), **rounds)
        assert all(torch.equal(a, b) for a, b in zip(parameters(reference), parameters(resumed))), path.name
        assert resumed.exploration_noise.state.tolist() == reference.exploration_noise.state.tolist()


def test_a_stop_request_saves_a_checkpoint_that_resumes_exactly(tmp_path):
    reference = run_pendulum(tmp_path / "reference", 450)
    with pytest.raises(TrainingInterrupted) as stopped:
        run_pendulum(tmp_path / "stopped", 450, stop_after=123)
    assert stopped.value.step == 123 and stopped.value.checkpoint.endswith("step_123.pt")
    resumed = run_pendulum(tmp_path / "resumed", 450, resume=load_checkpoint(Path(stopped.value.checkpoint)))
    assert all(torch.equal(a, b) for a, b in zip(parameters(reference), parameters(resumed)))

"""The off-policy runner with real envs and agents at tiny budgets."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from rlexp.agents.actor_critic import TD3
from rlexp.agents.dqn import DQN
from rlexp.agents.exploration import OrnsteinUhlenbeckNoise
from rlexp.envs import make_env, make_vector_env
from rlexp.errors import TrainingInterrupted
from rlexp.io.checkpoints import CheckpointManager, load_checkpoint
from rlexp.io.metrics import RunLogger
from rlexp.replay import ReplayBuffer
from rlexp.runners.collector import Collector
from rlexp.runners.context import Evaluator, Every, RunContext, RunResult
from rlexp.runners.faults import StopRequest
from rlexp.runners.off_policy import OffPolicyRunner, OffPolicySettings

CPU = torch.device("cpu")
EVAL_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class Settings:
    """What the old loop took in one place: the runner's settings, the context's schedule and the seed."""

    total_steps: int = 300
    learning_starts: int = 50
    train_freq: int = 4
    gradient_steps: int = 1
    batch_size: int = 16
    eval_every: int = 100
    eval_episodes: int = 2
    checkpoint_every: int = 100
    log_every: int = 10
    seed: int = 0
    train_freq_unit: str = "step"
    num_envs: int = 1
    vectorization: str = "sync"


def settings(**overrides) -> Settings:
    return Settings(**overrides)


def run(agent, env_id: str, env_kwargs: dict, buffer: ReplayBuffer, s: Settings, logger: RunLogger,
        checkpoints: CheckpointManager, meta: dict, stop: StopRequest, resume: dict | None = None) -> RunResult:
    """One run of the off-policy runner: `s.num_envs` training envs, an eval env of its own."""
    envs = make_vector_env(env_id, env_kwargs, None, s.num_envs, s.vectorization)
    eval_env = make_env(env_id, env_kwargs)
    context = RunContext(run_dir=Path(logger.writer.log_dir), logger=logger, checkpoints=checkpoints,
                         evaluator=Evaluator(eval_env, s.eval_episodes, s.seed + EVAL_SEED_OFFSET), stop=stop,
                         every=Every(log=s.log_every, eval=s.eval_every, checkpoint=s.checkpoint_every),
                         total_steps=s.total_steps, device=CPU, meta=meta)
    runner = OffPolicyRunner(agent, Collector(envs, s.seed, env_id), buffer, OffPolicySettings(
        total_steps=s.total_steps, learning_starts=s.learning_starts, train_freq=s.train_freq,
        gradient_steps=s.gradient_steps, batch_size=s.batch_size, num_envs=s.num_envs,
        train_freq_unit=s.train_freq_unit), context)
    try:
        return runner.run(resume)
    finally:
        envs.close()
        eval_env.close()


def dqn(total_steps: int) -> DQN:
    torch.manual_seed(0)
    return DQN(4, 2, hidden_sizes=[16], lr=1e-3, tau=1.0, target_update_interval=10,
               exploration_fraction=0.5, exploration_initial_eps=1.0, exploration_final_eps=0.05,
               max_grad_norm=10.0, lr_schedule="constant", total_steps=total_steps, total_updates=100,
               device=torch.device("cpu"),
               rng=np.random.default_rng(0))


META = {"algo": "dqn", "env_id": "CartPole-v1", "config": {}, "overrides": [], "device": "cpu"}


def train(tmp_path: Path, env_kwargs: dict, updates_at: list[int] | None = None, **overrides):
    """A tiny DQN run on CartPole; `updates_at`, when given, receives the env step of every update."""
    s = settings(**overrides)
    agent = dqn(s.total_steps)
    buffer = ReplayBuffer(s.total_steps, (4,), (), True, CPU, seed=0, num_envs=s.num_envs)
    if updates_at is not None:
        update = agent.update

        def recorded(batch):
            updates_at.append(len(buffer))  # the buffer holds every step so far
            return update(batch)
        agent.update = recorded
    logger = RunLogger(tmp_path, s.total_steps, 0, "none", {"algo": {"name": "dqn"}})
    try:
        result = run(agent, "CartPole-v1", env_kwargs, buffer, s, logger,
                     CheckpointManager(tmp_path / "checkpoints", keep=2), META, StopRequest())
    finally:
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


def test_several_envs_count_env_steps_and_make_gradient_steps_per_env(tmp_path):
    # 2 envs: 150 vector steps of 2 transitions. A round every 4 vector steps (every 8 env steps) after step 50
    # makes gradient_steps=1 update per env: rounds at steps 56, 64, ..., 296 (31 of them), 2 updates each.
    updates_at = []
    agent, buffer, result = train(tmp_path, {}, updates_at, num_envs=2)
    assert len(buffer) == 300 and buffer.ring.rows == 150 and result.steps == 300
    assert updates_at == [step for step in range(56, 301, 8) for _ in range(2)]
    assert agent.n_updates == 62
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best.pt", "final.pt", "step_200.pt", "step_300.pt"]


def test_async_envs_overlap_the_updates_and_the_same_seed_gives_the_same_run(tmp_path):
    # The round's updates run while the envs step in their workers, so their batches lack the step in flight: the
    # update at step 56 sees 54 transitions. The order is fixed, so two runs agree exactly.
    runs = []
    for name in ("a", "b"):
        updates_at = []
        agent, buffer, result = train(tmp_path / name, {}, updates_at, num_envs=2, vectorization="async")
        assert len(buffer) == 300 and result.steps == 300
        assert updates_at == [step - 2 for step in range(56, 301, 8) for _ in range(2)]
        runs.append(agent)
    assert all(torch.equal(p, q) for p, q in zip(runs[0].q_network.parameters(), runs[1].q_network.parameters()))


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
    noise = OrnsteinUhlenbeckNoise(1, 1, 0.5, 0.15, np.random.default_rng(0))  # stateful noise must resume too
    return TD3(3, np.array([-2.0]), np.array([2.0]), hidden_sizes=[16], actor_lr=1e-3, critic_lr=1e-3,
               tau=0.01, policy_delay=2, target_noise=0.2, target_noise_clip=0.5, n_critics=2,
               exploration_noise=noise, device=CPU)


def run_pendulum(directory: Path, total_steps: int, stop_after: int | None = None,
                 resume: dict | None = None, **overrides) -> TD3:
    """TD3 on Pendulum (200-step episodes, so checkpoints fall mid-episode), optionally stopped or resumed."""
    s = settings(**{"total_steps": total_steps, "learning_starts": 60, "train_freq": 1, "eval_every": 150,
                    "checkpoint_every": 70, **overrides})
    agent = td3(450)  # built for the full run, so its schedules do not depend on where it stops
    if resume is not None:
        agent.load_state_dict(resume["agent"])
    buffer = ReplayBuffer(450, (3,), (1,), False, CPU, seed=0)
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
        run(agent, "Pendulum-v1", {}, buffer, s, logger, CheckpointManager(directory / "checkpoints", 10),
            {**META, "algo": "td3", "env_id": "Pendulum-v1"}, StopAt(), resume)
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
    for path in checkpoints[:-1:2]:  # 70, 210, 350: each mid-episode, the last two after an evaluation
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

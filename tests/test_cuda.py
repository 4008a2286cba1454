"""The CUDA path: replay staged on the host and flushed in bulk, the agents' own generators, determinism, and
resuming across devices. The GPU tests run wherever CUDA is present (they are skipped, with the reason, on a
machine without it); the refusal to resume on another device type is checked on any machine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rlexp.io.checkpoints import CheckpointManager, load_checkpoint, save_checkpoint
from rlexp.replay import FrameReplayBuffer, PrioritizedReplayBuffer, ReplayBuffer
from tests.conftest import run_cli, run_in_process

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")
GPU, CPU = torch.device("cuda", 0), torch.device("cpu")


def fill(buffer: ReplayBuffer, rows: int, rng: np.random.Generator) -> None:
    shape = (buffer.num_envs, *buffer.storage["actions"].shape[1:])
    for _ in range(rows):
        obs = rng.normal(size=(buffer.num_envs, 3)).astype(np.float32)
        buffer.add(obs, rng.integers(0, 4, size=shape), rng.normal(size=buffer.num_envs).astype(np.float32),
                   obs + 1, rng.random(buffer.num_envs) < 0.1, rng.random(buffer.num_envs) < 0.05)


def staged_on(device: str) -> tuple[torch.device, bool]:
    """(device, stage on the host): the GPU stages; the CPU can be made to, so the staging logic runs anywhere."""
    return (GPU, True) if device == "cuda" else (CPU, True)


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=CUDA), "cpu-staged"])
@pytest.mark.parametrize("kind", [ReplayBuffer, PrioritizedReplayBuffer])
def test_replay_staged_on_the_host_matches_the_cpu_replay(kind, device):
    """More rows than the staging area holds, a wrap of the ring, n-step windows: the staged copy equals the
    replay written directly."""
    extra = dict(alpha=0.6, beta0=0.4, eps=1e-6, total_updates=100) if kind is PrioritizedReplayBuffer else {}
    target, staged = staged_on(device)
    buffers = [kind(5000, (3,), (), True, CPU, seed=0, num_envs=3, n_step=3, stage_on_host=False, **extra),
               kind(5000, (3,), (), True, target, seed=0, num_envs=3, n_step=3, stage_on_host=staged, **extra)]
    for buffer in buffers:
        fill(buffer, 3000, np.random.default_rng(0))
    assert buffers[1].staging is not None and buffers[1].staging.max_rows < 3000
    everything = torch.arange(len(buffers[0]))
    direct, staged_batch = (b.batch_at(everything.to(b.device)) for b in buffers)
    for a, b in zip(direct, staged_batch):
        if a is not None:
            assert torch.equal(a, b.cpu())
    a, b = (buffer.sample(64) for buffer in buffers)
    assert torch.equal(a.indices, b.indices.cpu()) and torch.equal(a.rewards, b.rewards.cpu())


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=CUDA), "cpu-staged"])
def test_frames_staged_on_the_host_match_the_cpu_frames(device):
    target, staged = staged_on(device)
    buffers = [FrameReplayBuffer(300, (4, 36, 36), (), True, CPU, seed=0, num_envs=2, stage_on_host=False),
               FrameReplayBuffer(300, (4, 36, 36), (), True, target, seed=0, num_envs=2, stage_on_host=staged)]
    rng = np.random.default_rng(0)
    stacks = rng.integers(0, 255, size=(2, 4, 36, 36), dtype=np.uint8)
    for _ in range(600):
        next_stacks = np.concatenate([stacks[:, 1:], rng.integers(0, 255, size=(2, 1, 36, 36), dtype=np.uint8)], 1)
        for buffer in buffers:
            buffer.add(stacks, np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.float32), next_stacks,
                       np.zeros(2, dtype=bool), np.zeros(2, dtype=bool))
        stacks = next_stacks
    live = buffers[0]._live(torch.arange(len(buffers[0])))
    direct, staged_batch = buffers[0].batch_at(live), buffers[1].batch_at(live.to(target))
    assert torch.equal(direct.observations, staged_batch.observations.cpu())
    assert torch.equal(direct.next_observations, staged_batch.next_observations.cpu())


def runs_twice_then_resumes_identically(workdir, args: list[str], network: str) -> None:
    """Two runs of `args` end with the same `network`; the second, resumed from its step_300 checkpoint (the later
    ones removed, as if killed after step 300), ends with it too."""
    for name in ("a", "b"):
        proc = run_cli([*args, f"hydra.run.dir={name}"], cwd=workdir)
        assert proc.returncode == 0, proc.stderr
    a, b = (load_checkpoint(workdir / name / "checkpoints" / "final.pt")["agent"] for name in ("a", "b"))
    assert all(torch.equal(a[network][k], b[network][k]) for k in a[network])
    for path in (workdir / "b" / "checkpoints").glob("step_*.pt"):
        if path.name != "step_300.pt":
            path.unlink()
    resumed = run_cli(["train", "resume=b"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    c = load_checkpoint(workdir / "b" / "checkpoints" / "final.pt")["agent"]
    assert all(torch.equal(a[network][k], c[network][k]) for k in a[network])


@CUDA
def test_a_cuda_run_is_deterministic_and_resumes_exactly(workdir):
    """Same seed, same run on the GPU (cuDNN's algorithms fixed), Atari's CNN included; and a resumed CUDA run
    ends where the uninterrupted one does."""
    args = ["train", "algo=dqn", "env=atari", "env.id=ALE/Pong-v5", "total_steps=600", "algo.learning_starts=200",
            "algo.buffer_size=500", "algo.batch_size=16", "eval.every=0", "eval.episodes=1", "checkpoint.every=300",
            "log.progress=none", "device=cuda", "env.num_envs=2"]
    runs_twice_then_resumes_identically(workdir, args, "q_network")


@CUDA
@pytest.mark.parametrize("algo, env", [("ppo", "Pendulum-v1"), ("a2c", "CartPole-v1")])
def test_an_on_policy_cuda_run_keeps_its_rollout_on_the_gpu_is_deterministic_and_resumes_exactly(workdir, algo, env):
    args = ["train", f"algo={algo}", f"env={env}", "total_steps=1200", "env.num_envs=2", "algo.n_steps=100",
            "eval.every=0", "eval.episodes=1", "checkpoint.every=300", "log.progress=none", "device=cuda",
            "env.normalize.obs=true", *(["algo.batch_size=50"] if algo == "ppo" else [])]
    runs_twice_then_resumes_identically(workdir, args, "policy")   # step 300: mid-rollout


@CUDA
def test_td3_target_noise_comes_from_the_agents_own_cuda_generator():
    from rlexp.agents.actor_critic import TD3
    from rlexp.agents.exploration import GaussianNoise

    def agent() -> TD3:
        torch.manual_seed(0)
        noise = GaussianNoise(1, 1, 0.1, np.random.default_rng(0))
        return TD3(3, np.array([-2.0]), np.array([2.0]), hidden_sizes=[16], actor_lr=1e-3, critic_lr=1e-3, tau=0.005,
                   policy_delay=2, target_noise=0.2, target_noise_clip=0.5, n_critics=2, exploration_noise=noise,
                   device=GPU)

    first, second = agent(), agent()
    second.load_state_dict(first.state_dict())
    torch.cuda.manual_seed(123)  # the global CUDA generator is no longer read
    obs = torch.zeros(8, 3, device=GPU)
    assert torch.equal(first.target_actions(obs, first.smoothing_noise((8, 1))),
                       second.target_actions(obs, second.smoothing_noise((8, 1))))


def test_resuming_on_another_device_type_is_refused_in_one_line(workdir, capsys, monkeypatch):
    """A checkpoint's generators belong to the device type that made them: a run trained on CUDA resumed on the
    CPU (here: a CPU run whose checkpoint says cuda) is refused, and nothing in the run changes."""
    args = ["train", "algo=dqn", "env=CartPole-v1", "total_steps=400", "algo.learning_starts=100", "eval.every=0",
            "eval.episodes=1", "checkpoint.every=200", "log.progress=none", "torch_threads=1", "hydra.run.dir=run"]
    assert run_cli(args, cwd=workdir).returncode == 0
    manager = CheckpointManager(workdir / "run" / "checkpoints", 3)
    newest = manager.latest()
    bundle = load_checkpoint(newest)
    save_checkpoint({**bundle, "device": "cuda:0"}, newest)
    before = {p: p.read_bytes() for p in (workdir / "run").rglob("*") if p.is_file()}
    proc = run_in_process(["train", "resume=run", "total_steps=600", "device=cpu"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "trained on cuda and its random generators cannot continue exactly on cpu" in proc.stderr
    assert {p: p.read_bytes() for p in (workdir / "run").rglob("*") if p.is_file()} == before
    assert json.loads((workdir / "run" / "results.json").read_text())["status"] == "completed"

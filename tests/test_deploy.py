"""Using a trained agent: `rlexp.load` in Python, and `rlexp export` to files that run without rlexp.

Each algorithm on its kind of env (discrete, bounded continuous, float64 MuJoCo observations with normalization,
Atari frames) is trained for a few steps, loaded, and exported in all three formats (each verified against the
agent); one format per algorithm, each format on discrete and continuous actions, goes through the command line and
drives an episode in a process whose Python has only torch (or onnxruntime) and numpy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

import rlexp
from rlexp.errors import CheckpointError, ConfigError
from tests.conftest import TINY, made_once, run_cli, run_in_process, train_in_process

RUNS = {
    "dqn": ["algo=dqn", "env=CartPole-v1", "total_steps=300", "algo.learning_starts=100"],
    "ddpg": ["algo=ddpg", "env=Pendulum-v1", "total_steps=300", "algo.learning_starts=100",
             "network.hidden_sizes=[32]", "algo.batch_norm=true"],
    "td3": ["algo=td3", "env=Pendulum-v1", "total_steps=300", "algo.learning_starts=100",
            "network.hidden_sizes=[32]", "env.normalize.obs=true"],
    "sac": ["algo=sac", "env=MountainCarContinuous-v0", "total_steps=300", "algo.learning_starts=100",
            "network.hidden_sizes=[32]", "algo.use_sde=true"],
    # MuJoCo's observations are float64: the export takes them as they are, normalizes in float64.
    "ppo": ["algo=ppo", "env=HalfCheetah-v5", "env.normalize.obs=true", "env.normalize.reward=true",
            "total_steps=256", "algo.n_steps=64", "env.num_envs=2", "algo.batch_size=64", "algo.n_epochs=1"],
    "a2c": ["algo=a2c", "env=CartPole-v1", "env.normalize.obs=true", "total_steps=256", "algo.n_steps=8",
            "env.num_envs=2"],
    "dqn_atari": ["algo=dqn", "env=atari", "env.id=ALE/Pong-v5", "total_steps=300", "algo.learning_starts=200",
                  "algo.buffer_size=500", "+env.kwargs.max_num_frames_per_episode=400", "log.heldout_states=16"],
    # noisy layers (exported at their mean weights), C51's distributions on dueling streams; QR-DQN's quantiles
    "rainbow": ["algo=rainbow", "env=CartPole-v1", "total_steps=300", "algo.learning_starts=100", "algo.atoms=11",
                "network.hidden_sizes=[32]"],
    "qrdqn": ["algo=qrdqn", "env=CartPole-v1", "total_steps=300", "algo.learning_starts=100", "algo.quantiles=16",
              "network.hidden_sizes=[32]"],
    "tqc": ["algo=tqc", "env=Pendulum-v1", "total_steps=300", "algo.learning_starts=100", "algo.n_quantiles=5",
            "algo.n_critics=2", "network.hidden_sizes=[32]"],
    # batch renormalisation past its warmup: exported as the affine map of its running statistics
    "crossq": ["algo=crossq", "env=Pendulum-v1", "total_steps=300", "algo.learning_starts=100",
               "algo.critic_hidden_sizes=[32]", "network.hidden_sizes=[32]", "algo.batch_renorm_warmup_steps=50"],
}
#: The format each algorithm is exported in from the command line and driven through an episode without rlexp.
FORMAT_OF = {"dqn": "torchscript", "ddpg": "pt2", "td3": "onnx", "sac": "torchscript", "ppo": "onnx", "a2c": "pt2",
             "dqn_atari": "onnx", "rainbow": "torchscript", "qrdqn": "pt2", "tqc": "onnx", "crossq": "pt2"}
FORMATS = {"torchscript": ".pt", "pt2": ".pt2", "onnx": ".onnx"}
#: The runs whose export another run's covers from the command line (its format, on its kind of actions, in the
#: default suite: PPO's ONNX on continuous actions is TD3's): exported in process.
EXPORTED_IN_PROCESS = {"ppo", "rainbow"}
#: The steps an episode through an export is cut at (HalfCheetah's run 1,000): enough to compare returns.
EPISODE_STEPS = 300


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Callable[[str], Path]:
    """trained(name): the run of RUNS[name], trained from the command line once per session (made_once, at its
    first use)."""
    def run_of(name: str) -> Path:
        def make(root: Path) -> None:
            proc = train_in_process(["train", *RUNS[name], "hydra.run.dir=run", *TINY, "eval.episodes=1"], root)
            assert proc.returncode == 0, proc.stderr

        return made_once(tmp_path_factory, f"deploy-{name}", make)[0] / "run"

    return run_of


@pytest.fixture
def train(trained) -> Callable[[str, Path], Path]:
    """train(name, workdir): a copy of the trained run of RUNS[name] at workdir/run, for the test to write into."""
    def copy(name: str, workdir: Path) -> Path:
        return Path(shutil.copytree(trained(name), workdir / "run", symlinks=True))

    return copy


def play(act, env, seed: int, steps: int = EPISODE_STEPS) -> float:
    """The return of one episode (at most `steps` steps) with `act`: one raw observation -> one env action."""
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(act(obs))
        total += float(reward)
        if terminated or truncated:
            break
    return total


# --- a Python with only torch (or onnxruntime) and numpy ------------------------------------------------------

def _closure(names: list[str]) -> set[str]:
    """The distributions `names` need, as pip would install them (their requirements, recursively)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def bare_site(names: list[str], directory: Path) -> Path:
    """A directory holding only `names` and what they need (links into this venv's site-packages)."""
    directory.mkdir(exist_ok=True)
    for name in _closure(names):
        dist = metadata.distribution(name)
        for top in {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            source = Path(dist.locate_file(top))
            if top.endswith(".pth") or top == "__pycache__" or not source.exists() or (directory / top).exists():
                continue
            (directory / top).symlink_to(source)
    return directory


#: The program a deployment would run: the JSON says the shapes and dtypes; raw bytes in, raw bytes out.
SERVE = r"""
import importlib.util, json, math, sys
sys.path.insert(0, sys.argv[3])
for module in ("rlexp", "gymnasium", "hydra", "omegaconf", "torch" if sys.argv[4] == "onnx" else "onnxruntime"):
    assert importlib.util.find_spec(module) is None, module + " is importable"
import numpy as np
spec = json.load(open(sys.argv[2]))
if sys.argv[4] == "onnx":
    import onnxruntime
    session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    policy = lambda obs: session.run([spec["output"]["name"]], {spec["input"]["name"]: obs})[0]
else:
    import torch
    module = torch.jit.load(sys.argv[1]) if sys.argv[4] == "torchscript" else torch.export.load(sys.argv[1]).module()
    policy = lambda obs: module(torch.from_numpy(obs)).numpy()
shape, dtype = spec["input"]["shape"][1:], np.dtype(spec["input"]["dtype"])
size = dtype.itemsize * math.prod(shape)
print("ready", flush=True)
while len(data := sys.stdin.buffer.read(size)) == size:
    action = policy(np.frombuffer(data, dtype).reshape(1, *shape).copy())
    sys.stdout.buffer.write(np.ascontiguousarray(action, spec["output"]["dtype"]).tobytes())
    sys.stdout.buffer.flush()
"""


class BarePolicy:
    """An export served by `python -I -S` with only the bare site on its path, one observation at a time."""

    def __init__(self, file: Path, site: Path, fmt: str) -> None:
        spec_file = file.with_name(file.name + ".json")
        self.spec = json.loads(spec_file.read_text())
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", SERVE, str(file), str(spec_file), str(site),
                                      fmt], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdout.readline() == b"ready\n", self.proc.stderr.read().decode()
        out = self.spec["output"]
        self.action_shape = tuple(out["shape"][1:])
        self.out_dtype = np.dtype(out["dtype"])
        self.in_dtype = np.dtype(self.spec["input"]["dtype"])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        self.proc.stdin.write(np.ascontiguousarray(obs, self.in_dtype).tobytes())
        self.proc.stdin.flush()
        size = self.out_dtype.itemsize * int(np.prod(self.action_shape))
        data = self.proc.stdout.read(size)
        assert len(data) == size, self.proc.stderr.read().decode()
        action = np.frombuffer(data, self.out_dtype).reshape(self.action_shape)
        return action if self.action_shape else action.item()

    def close(self) -> None:
        self.proc.stdin.close()
        code = self.proc.wait(timeout=60)
        errors = self.proc.stderr.read().decode()
        self.proc.stdout.close()
        self.proc.stderr.close()
        assert code == 0, errors


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    root = tmp_path_factory.mktemp("bare")
    torch_only = bare_site(["torch", "numpy"], root / "torch")
    return {"torchscript": torch_only, "pt2": torch_only,
            "onnx": bare_site(["onnxruntime", "numpy"], root / "onnxruntime")}


# --- the tests --------------------------------------------------------------------------------------------------

#: Left to `pytest -m slow` to keep the default suite short: Atari's CNN, DDPG's batch norm, SAC's gSDE, A2C (its
#: policy network is PPO's), DQN and QR-DQN (their networks are Rainbow's, with other heads) and TQC (its policy is
#: SAC's).
SLOW = ("dqn_atari", "ddpg", "sac", "a2c", "dqn", "qrdqn", "tqc")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in RUNS])
def test_load_act_and_exports_that_run_without_rlexp(name, workdir, sites, train, capsys, monkeypatch):
    run = train(name, workdir)
    agent = rlexp.load(run, device="cpu")
    assert agent.algo == RUNS[name][0].split("=")[1] and isinstance(agent.config, dict)
    assert agent.step == agent.config["total_steps"] or agent.algo in ("ppo", "a2c")
    env = agent.make_env()
    obs, _ = env.reset(seed=0)

    # One observation -> one action the env takes; a batch -> one per row, the same for the same state
    action = agent.act(obs)
    assert env.action_space.contains(np.asarray(action, env.action_space.dtype))
    batch = agent.act(np.stack([obs] * 3))
    # (a batch of 3 is another matrix product than a batch of 1: equal up to float rounding)
    assert len(batch) == 3 and all(np.allclose(row, action, rtol=0, atol=1e-5) for row in batch)
    explored = agent.act(np.stack([obs] * 3), explore=True)
    assert explored.shape == batch.shape
    if not env.action_space.shape == ():  # bounded continuous actions stay in bounds when exploring
        assert np.all(explored >= env.action_space.low) and np.all(explored <= env.action_space.high)

    # The final evaluation of the run, replayed with the loaded agent: the same returns.
    results = json.loads((run / "results.json").read_text())
    seed = agent.config["seed"] + 10_000
    replayed = play(agent.act, env, seed, steps=10**6)
    assert replayed == pytest.approx(results["eval_returns"][0], abs=1e-6)

    # Each format from the command line and through an episode in a bare Python for some algorithms (each format
    # on discrete and continuous actions), and verified through the Python API for every algorithm.
    fmt = FORMAT_OF[name]
    suffix = FORMATS[fmt]
    export = ["export", "run", f"format={fmt}", "states=300"]
    proc = run_in_process(export, workdir, capsys, monkeypatch) if name in EXPORTED_IN_PROCESS \
        else run_cli(export, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    file = run / "export" / f"policy{suffix}"
    spec = json.loads(file.with_name(file.name + ".json").read_text())
    assert f"-> run/export/policy{suffix} ({fmt})" in proc.stdout and spec["verified"]["states"] == 300
    assert spec["input"]["shape"] == ["batch", *env.observation_space.shape]
    assert spec["input"]["dtype"] == str(env.observation_space.dtype)
    assert spec["output"]["shape"] == ["batch", *env.action_space.shape]
    assert ("observation normalization" in " ".join(spec["inside"])) == ("env.normalize.obs=true" in RUNS[name])

    # An episode through the file, in a Python without rlexp, against the agent's own (same seed).
    bare = BarePolicy(file, sites[fmt], fmt)
    try:
        exported_return = play(bare, env, seed=1)
    finally:
        bare.close()
    own_return = play(agent.act, env, seed=1)
    assert exported_return == pytest.approx(own_return, rel=1e-4, abs=1e-3)

    from rlexp.deploy.export import export

    for other in set(FORMATS) - {fmt}:
        result = export(agent, other, workdir / "more", states=200)
        assert result.file.name == f"policy{FORMATS[other]}" and result.states == 200
    env.close()


def test_exported_modules_match_the_agent_on_other_batch_sizes(workdir, train):
    """The batch axis of a traced or exported policy is free: 1, 7 and 300 rows give the agent's actions."""
    run = train("td3", workdir)
    agent = rlexp.load(run)
    observations = np.random.default_rng(0).uniform(-1, 1, size=(300, 3)).astype(np.float32)
    module = agent.policy_module()
    for rows in (1, 7, 300):
        np.testing.assert_allclose(module(torch.as_tensor(observations[:rows])).numpy(),
                                   agent.act(observations[:rows]), atol=1e-6)


def test_load_refuses_what_is_not_a_checkpoint(workdir):
    (workdir / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a valid zip archive"):
        rlexp.load(workdir / "notes.pt")
    torch.save({"format": 1, "agent": {}}, workdir / "old.pt")
    with pytest.raises(CheckpointError, match="has format 1"):
        rlexp.load(workdir / "old.pt")
    with pytest.raises(ConfigError, match="neither a run directory nor a checkpoint file"):
        rlexp.load(workdir / "missing")
    with pytest.raises(ConfigError, match="holds no checkpoints/final.pt"):
        rlexp.load(workdir)


def test_load_closes_the_env_it_reads_the_spaces_of_even_when_reading_them_fails(workdir, monkeypatch):
    """The env `rlexp.load` opens to learn the spaces is closed whatever happens (no training: a checkpoint of a
    config alone, refused before its agent is built)."""
    import gymnasium as gym
    from omegaconf import OmegaConf

    import rlexp.envs
    from rlexp.io.checkpoints import FORMAT, save_checkpoint
    from tests.conftest import compose_config

    config = OmegaConf.to_container(compose_config(["algo=dqn", "env=CartPole-v1"]), resolve=True, enum_to_str=True)
    save_checkpoint({"format": FORMAT, "config": config, "step": 0, "agent": {}}, workdir / "config_only.pt")
    opened, closed = [], []
    make_env = rlexp.envs.make_env

    class Counted(gym.Wrapper):
        def close(self) -> None:
            closed.append(self)
            super().close()

    def counted(*args: object) -> gym.Env:
        opened.append(Counted(make_env(*args)))
        return opened[-1]

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt   # a Ctrl-C while the spaces are read

    describe_spaces = rlexp.envs.describe_spaces
    monkeypatch.setattr(rlexp.envs, "make_env", counted)
    monkeypatch.setattr(rlexp.envs, "describe_spaces", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rlexp.load(workdir / "config_only.pt")
    assert len(opened) == 1 and closed == opened
    # The spaces read, the empty agent state is what refuses the file: the env was closed before.
    monkeypatch.setattr(rlexp.envs, "describe_spaces", describe_spaces)
    with pytest.raises(ConfigError, match="config_only.pt: its config builds networks of 67,586 parameters, but its "
                                          "agent holds 0 numbers"):
        rlexp.load(workdir / "config_only.pt")
    assert len(opened) == 2 and closed == opened

def test_act_names_the_shape_it_takes_and_the_best_checkpoint_exports_under_its_name(workdir, train, capsys,
                                                                                      monkeypatch):
    run = train("dqn", workdir)
    agent = rlexp.load(run, checkpoint="best")
    assert agent.checkpoint == run / "checkpoints" / "best.pt"
    with pytest.raises(ValueError, match=r"takes one of shape \(4,\) or a batch of shape \(N, 4\)"):
        agent.act(np.zeros(5))
    # (in process: `rlexp export` as a user types it is test_load_act_and_exports_that_run_without_rlexp's)
    proc = run_in_process(["export", "run", "format=torchscript", "checkpoint=best", "states=64"], workdir, capsys,
                          monkeypatch)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (run / "export").iterdir()) == ["policy_best.pt", "policy_best.pt.json"]
    assert json.loads((run / "export" / "policy_best.pt.json").read_text())["checkpoint"].endswith("best.pt")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_exported_normalization_is_the_runs_to_the_last_bit(dtype):
    """(x - mean) / sqrt(var + 1e-8), clipped, in float64 from the raw dtype, then float32: as the numpy code."""
    from rlexp.deploy.policy import ExportedPolicy
    from rlexp.envs.normalization import Normalization, NormalizeSettings

    rng = np.random.default_rng(0)
    normalization = Normalization(NormalizeSettings(True, False, 2.5, 10.0, 0.99), (5,), 1)
    normalization.observations(rng.normal(3.0, 4.0, size=(1000, 5)), update=True)
    module = ExportedPolicy(torch.nn.Identity(), normalization.obs_rms.mean, normalization.obs_rms.var, 2.5)
    raw = rng.normal(3.0, 9.0, size=(200, 5)).astype(dtype)
    expected = normalization.observations(raw, update=False)
    got = module(torch.as_tensor(raw)).numpy()
    assert got.dtype == np.float32 and np.array_equal(got, expected) and np.abs(got).max() == 2.5


def test_the_deterministic_policy_takes_the_greedy_action_or_clamps_to_the_bounds():
    from rlexp.networks.deterministic import DeterministicPolicy

    q_values = torch.tensor([[1.0, 3.0, 2.0], [0.5, -1.0, 0.0]])
    assert DeterministicPolicy(torch.nn.Identity(), greedy=True)(q_values).tolist() == [1, 0]
    bounded = DeterministicPolicy(torch.nn.Identity(), low=np.array([-1.0, 0.0]), high=np.array([1.0, 2.0]))
    assert bounded(torch.tensor([[-3.0, 1.5], [0.5, 5.0]])).tolist() == [[-1.0, 1.5], [0.5, 2.0]]


def test_load_leaves_the_callers_random_streams_alone(workdir, train):
    run = train("td3", workdir)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    rlexp.load(run)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("args, message", [
    pytest.param(["run"], "say which format: format=torchscript or format=pt2 or format=onnx",
                 marks=pytest.mark.as_typed),
    (["run", "format=tflite"], "format=tflite must be torchscript or pt2 or onnx"),
    (["run", "format=onnx", "checkpoint=last"], "checkpoint=last must be final or best"),
    (["run", "format=onnx", "states=0"], "states=0 must be a positive integer"),
    (["nowhere", "format=onnx"], "nowhere is neither a run directory nor a checkpoint file"),
    (["run", "format=onnx", "checkpoint=best", "colour=red"], "colour is not an option of rlexp export"),
])
def test_bad_export_input_is_one_line_exit_2_and_writes_nothing(workdir, rlexp, args, message):
    (workdir / "run").mkdir()
    proc = rlexp(["export", *args], cwd=workdir)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert sorted(p.name for p in (workdir / "run").iterdir()) == []


def test_onnx_without_its_extra_names_the_extra(workdir, monkeypatch):
    from rlexp.deploy import export

    monkeypatch.setitem(sys.modules, "onnxruntime", None)   # as if not installed
    with pytest.raises(ConfigError, match=r'onnxruntime is not installed; fix: pip install "rlexp\[export\]"'):
        export._check_onnx()


def test_a_file_that_does_not_reproduce_the_agent_is_refused_and_nothing_is_left(workdir, monkeypatch, train):
    from rlexp.deploy import export

    run = train("dqn", workdir)
    agent = rlexp.load(run)
    write = export.WRITERS["torchscript"]
    # A file that answers with another action than the agent's.
    monkeypatch.setitem(export.WRITERS, "torchscript",
                        lambda module, example, path: (lambda f: (lambda obs: 1 - f(obs)))(
                            write(module, example, path)))
    with pytest.raises(export.ExportMismatch, match="does not reproduce the agent's actions"):
        export.export(agent, "torchscript", run / "export", states=50)
    assert not (run / "export").exists()


def test_export_refuses_what_it_cannot_do_before_it_starts(workdir, capsys, monkeypatch, train):
    train("td3", workdir)
    (workdir / "afile").write_text("x")
    for args, message in (
            (["run", "format=pt2", "out=afile"], "out=afile is a file; give a directory for the export"),
            (["run", "format=pt2", "states=99999999999"], "states=99999999999: the verification states would need"),
            (["run/checkpoints/final.pt", "format=pt2", "checkpoint=best"], "checkpoint=best picks a checkpoint of a "
                                                                            "run directory"),
            (["run", "format=pt2", "format=onnx"], "format is given twice"),
            ([], "give one run directory or checkpoint file (rlexp export --help)")):
        proc = run_in_process(["export", *args], workdir, capsys, monkeypatch)
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (workdir / "run" / "export").exists()
    proc = run_in_process(["export", "run", "format=torchscript", "states=20"], workdir, capsys, monkeypatch)
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(CheckpointError, match="is a TorchScript module"):
        rlexp.load(workdir / "run" / "export" / "policy.pt")


@pytest.mark.parametrize("damage, message", [
    (lambda rms: rms.update(mean=torch.full_like(rms["mean"], float("nan"))), "are not finite"),
    (lambda rms: rms.update(mean=rms["mean"][:2], var=rms["var"][:2]),
     r"have shape \(2,\), the env's observations \(3,\)"),
])
def test_load_refuses_observation_statistics_act_cannot_use(workdir, train, damage, message):
    """Statistics of another shape, or NaN (every action would be NaN, silently): refused when loaded."""
    from rlexp.io.checkpoints import load_checkpoint, save_checkpoint

    final = train("td3", workdir) / "checkpoints" / "final.pt"   # normalizes its observations
    bundle = load_checkpoint(final)
    damage(bundle["normalization"]["obs_rms"])
    save_checkpoint(bundle, final)
    with pytest.raises(ConfigError, match=f"final.pt: its observation statistics {message}"):
        rlexp.load(final)

"""Bad input: one line on stderr, exit code 2, nothing trained or written; each kind of refusal once as a user
types it (a subprocess), the other cases through the same entry point in process."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import as_completed, cli_env, completed, made_once, run_cli_without

FAULTY = "tests.faulty_envs"
# A subprocess, as a user types it, for one refusal of each kind: before Hydra (the command line), Hydra's own
# (composing the config), the config's checks, the env's spaces; the other cases run in process (conftest: rlexp).
AS_TYPED = pytest.mark.as_typed


@pytest.mark.parametrize("args, expected", [
    # the algorithm does not fit the env: both spaces named, and what to use instead
    pytest.param(["algo=dqn", "env=Pendulum-v1"], ["algo=dqn needs a discrete action space", "Pendulum-v1",
                                                   "actions Box(-2.0, 2.0",
                                                   "use algo=a2c, algo=crossq, algo=ddpg, algo=ppo, algo=sac, "
                                                   "algo=td3 or algo=tqc"],
                 marks=AS_TYPED),
    (["algo=td3", "env=CartPole-v1"], ["algo=td3 needs a continuous (Box) action space", "Discrete(2)",
                                       "use algo=a2c, algo=dqn, algo=ppo, algo=qrdqn or algo=rainbow"]),
    (["algo=td3", f"env.id={FAULTY}:UnboundedAction-v0"], ["unbounded action space", "Box(-inf, inf",
                                                           "RescaleAction"]),
    # envs that do not exist
    (["env.id=CartPol-v1"], ["env.id='CartPol-v1' is not a registered", "did you mean CartPole-v1"]),
    # values out of range, and cross-field rules
    pytest.param(["algo.gamma=2"], ["algo.gamma=2.0 is outside [0.0, 1.0]"], marks=AS_TYPED),
    (["algo.tau=0"], ["algo.tau=0.0 is outside (0.0, 1.0]"]),
    (["algo.batch_size=300000"], ["algo.batch_size=300000 exceeds algo.buffer_size=100000"]),
    (["algo.learning_starts=60000", "total_steps=50000"], ["algo.learning_starts=60000 >= total_steps=50000"]),
    (["algo=td3", "env=Pendulum-v1", "algo.policy_delay=0"], ["algo.policy_delay=0 must be a positive integer"]),
    (["algo.gradient_steps=0"], ["algo.gradient_steps=0 must be a positive integer, or -1"]),
    (["algo.train_freq_unit=episode", "algo.gradient_steps=4"], ["algo.train_freq_unit=episode with",
                                                                 "use algo.gradient_steps=-1"]),
    # the schema: unknown keys, wrong types, values outside a choice, unknown group options
    pytest.param(["algo.lrr=1"], ["algo.lrr is not a config key; did you mean algo.lr?"], marks=AS_TYPED),
    (["algo.gamma=abc"], ["algo.gamma=abc", "could not be converted to Float"]),
    (["seed=1.5"], ["seed=1.5", "could not be converted to Integer"]),
    (["algo.lr_schedule=cosine"], ["Invalid value 'cosine', expected one of [constant, linear]"]),
    (["algo.train_freq_unit=episodes"], ["Invalid value 'episodes', expected one of [step, episode]"]),
    (["algo=dqnn"], ["algo=dqnn is not an option of the algo group", "did you mean algo=dqn?"]),
    (["experiment=ddpg_papr"], ["experiment=ddpg_papr is not an option of the experiment group",
                                "did you mean experiment=ddpg_paper?"]),
    (["env.num_envs=0"], ["env.num_envs=0 must be a positive integer"]),
    (["env.vectorization=threads"], ["Invalid value 'threads'"]),
    # missing values and broken interpolations
    (["total_steps=???"], ["Missing mandatory value: total_steps"]),
    (["total_steps=${nope}"], ["Interpolation key 'nope' not found"]),
    # devices and resume targets that do not exist
    pytest.param(["device=cuda:7"], ["device='cuda:7'"],
                 marks=pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has a cuda:7")),
    pytest.param(["resume=no/such/run"], ["resume=no/such/run", "is not an rlexp run directory"], marks=AS_TYPED),
    (["--multirun", "resume=no/such/run"], ["resume continues one run"]),
])
def test_bad_input_is_one_line_exit_2_and_nothing_is_trained(workdir, rlexp, args, expected):
    proc = rlexp(["train", *args, "hydra.run.dir=run", "log.progress=none"], cwd=workdir)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("rlexp train: error: "), proc.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    run_dir = workdir / "run"
    assert not (run_dir / "checkpoints").exists()
    assert not list(run_dir.glob("events.out.tfevents*")) if run_dir.exists() else True


EXTRAS = {   # an env family's package, the command that needs it, and the fix the error names
    "Box2D": (["algo=dqn", "env=LunarLander-v3"], 'pip install "rlexp[box2d]"'),
    "mujoco": (["algo=td3", "env=HalfCheetah-v5"], 'pip install "rlexp[mujoco]"'),
    "ale_py": (["algo=dqn", "env=atari"], 'pip install "rlexp[atari]"'),
}


@pytest.fixture(scope="module")
def without_extras(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Each command of EXTRAS in an interpreter without any of their packages, as on a machine without the extras:
    `import <module>` fails (one interpreter for the three; each needs only its own package)."""
    def make(workdir: Path) -> list[dict]:
        commands = [["train", *args, f"hydra.run.dir=run_{module}"] for module, (args, _) in EXTRAS.items()]
        return [completed(proc) for proc in run_cli_without(list(EXTRAS), commands, workdir)]

    return dict(zip(EXTRAS, map(as_completed, made_once(tmp_path_factory, "errors-without-extras", make)[1]),
                    strict=True))


@pytest.mark.parametrize("module", list(EXTRAS))
def test_an_env_whose_extra_is_missing_says_which_pip_install_fixes_it(without_extras, module):
    proc, fix = without_extras[module], EXTRAS[module][1]
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert fix in proc.stderr


def test_the_full_traceback_is_shown_only_with_hydra_full_error(workdir):
    env = {**cli_env(), "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([sys.executable, "-m", "rlexp", "train", "algo.gamma=2", "hydra.run.dir=run"],
                          cwd=workdir, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr

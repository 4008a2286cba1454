"""A run directory or a checkpoint is data, not code (README, Reliability: what loading a run may import): a
crafted `.hydra/overrides.yaml` replays no Hydra setting, a saved env.id imports no module from the current or the
run's directory (nor of the standard library), a crafted pickle runs nothing, for every loader (rlexp eval, rlexp
export, rlexp.load, resume); and a loaded agent checks what it is given.

One tiny run of our own env module (`tests.faulty_envs`, found through PYTHONPATH as a user's package is) is
trained once and copied; each test tampers with its copy. A crafted module or pickle, if it ran, would leave a
marker file: each refusal also checks that the marker is absent.
"""

from __future__ import annotations

import pickle
import re
import shutil
import sys
import sysconfig
import uuid
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlexp
from rlexp.errors import CheckpointError, ConfigError
from rlexp.io.checkpoints import load_checkpoint, save_checkpoint
from tests.conftest import TINY, made_once, one_line, run_cli, run_in_process, snapshot, train_in_process

RUN = ["algo=td3", "env.id=tests.faulty_envs:Unseeded-v0", "total_steps=300", "algo.learning_starts=100",
       "network.hidden_sizes=[16]", "eval.episodes=1"]


@pytest.fixture
def run(tmp_path_factory, workdir, monkeypatch) -> Path:
    """A copy, at workdir/run, of a finished 300-step TD3 run on tests.faulty_envs:Unseeded-v0 trained once per
    session (checkpoints at steps 200 and 300, final.pt); the test runs in workdir. (Not in the repository's root,
    which is on this process's sys.path: from there the run's own module would be one of the current directory's.)"""
    def make(root: Path) -> None:
        proc = train_in_process(["train", *RUN, *TINY, "hydra.run.dir=run"], root)
        assert proc.returncode == 0, proc.stderr

    trained = made_once(tmp_path_factory, "untrusted-td3", make)[0] / "run"
    monkeypatch.chdir(workdir)
    return Path(shutil.copytree(trained, workdir / "run", symlinks=True))



# --- what a resume replays from .hydra/overrides.yaml ---------------------------------------------------------------

def callback_lines(marker: Path) -> list[str]:
    """A Hydra callback that Hydra would build (instantiate) at its start: open(marker, 'w'), creating the file."""
    return ["+hydra.callbacks.planted._target_=builtins.open", f"+hydra.callbacks.planted.file={marker}",
            "+hydra.callbacks.planted.mode=w"]


@pytest.mark.parametrize("lines, refused, reason", [
    pytest.param(None, "+hydra.callbacks.planted._target_=builtins.open", "a setting of Hydra's own",
                 marks=pytest.mark.as_typed),
    (["hydra.job.env_set.LD_PRELOAD=/tmp/x.so"], "hydra.job.env_set.LD_PRELOAD=/tmp/x.so", "a setting of Hydra's own"),
    (["hydra/launcher=joblib"], "hydra/launcher=joblib", "a setting of Hydra's own"),
    (["hydra.searchpath=[file:///tmp]"], "hydra.searchpath=[file:///tmp]", "a setting of Hydra's own"),
    (["--config-dir=/tmp"], "--config-dir=/tmp", "a flag of Hydra's command line"),
    (["-cd", "/tmp"], "-cd", "a flag of Hydra's command line"),
    # a group option given as a path loads any YAML file, which may set hydra.callbacks itself
    (["experiment=../../../../../../tmp/planted"], "experiment=../../../../../../tmp/planted",
     "'../../../../../../tmp/planted' is not an option of the experiment group"),
    (["env@_global_=CartPole-v1"], "env@_global_=CartPole-v1", "a config group put in another package"),
    (["+defaults=[x]"], "+defaults=[x]", "not a key or group of rlexp's config"),
])
def test_a_resume_replays_only_the_runs_own_keys(run, workdir, rlexp, lines, refused, reason):
    marker = workdir / "callback_ran"
    saved = run / ".hydra" / "overrides.yaml"
    original = saved.read_text()
    kept = len(original.splitlines())
    with saved.open("a") as file:
        file.writelines(f"- {line!r}\n" for line in (lines or callback_lines(marker)))
    before = snapshot(workdir)
    proc = rlexp(["train", "resume=run", "total_steps=400"], workdir)
    line = one_line(proc)
    assert proc.returncode == 2
    assert f"line {kept + 1} of {saved.resolve()}, {refused!r}, is not replayed: {reason}" in line
    assert snapshot(workdir) == before and not marker.exists()


def test_a_group_option_of_the_users_own_config_dir_replays_with_that_dir(run, workdir):
    """A run trained with `-cd my_conf env=my_env` resumes with the same flag; without it the line is refused."""
    from rlexp.commands.resume import resume_arguments

    (workdir / "my_conf" / "env").mkdir(parents=True)
    (workdir / "my_conf" / "env" / "my_env.yaml").write_text("id: tests.faulty_envs:Unseeded-v0\n")
    with (run / ".hydra" / "overrides.yaml").open("a") as file:
        file.write("- env=my_env\n")
    assert "env=my_env" in resume_arguments(["-cd", "my_conf", "resume=run"])
    assert "env=my_env" in resume_arguments(["--config-dir=my_conf", "resume=run"])
    with pytest.raises(ConfigError, match="'my_env' is not an option of the env group"):
        resume_arguments(["resume=run"])


def test_the_users_own_hydra_settings_on_a_resume_are_theirs(run, workdir, capsys, monkeypatch):
    """What the user types on the resume's command line passes (a Hydra setting among it): the resume goes on to
    compare the config with the checkpoint, here a finished run, refused for its budget."""
    proc = run_in_process(["train", "resume=run", "hydra.job.name=mine", "+hydra.job.env_set.RLEXP_TEST_FLAG=1"],
                          workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and "already at step 300 of total_steps=300" in one_line(proc)


def test_hydras_rerun_of_a_pickled_config_is_refused(workdir, capsys, monkeypatch):
    """`--experimental-rerun <run>/.hydra/config.pickle` would pickle.load the file (rlexp writes none)."""
    marker = workdir / "rerun_ran"
    (workdir / "config.pickle").write_bytes(pickle.dumps(Planted(f"open({str(marker)!r}, 'w').close()")))
    proc = run_in_process(["train", "--experimental-rerun", "config.pickle"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and "--experimental-rerun config.pickle: Hydra's rerun unpickles that file, which " \
        "can run any code" in one_line(proc)
    assert not marker.exists()


def test_the_callback_lines_run_code_when_replayed(run, workdir):
    """The refused lines above are live: composed as Hydra composes the replayed command line, the callback is
    there for Hydra to build (so the refusal is what keeps it from running)."""
    from hydra import compose, initialize_config_dir

    from rlexp.commands.configstore import config_dir, register

    register()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=callback_lines(workdir / "m"), return_hydra_config=True)
    assert cfg.hydra.callbacks.planted._target_ == "builtins.open"


# --- what loading a run may import ----------------------------------------------------------------------------------

def plant_module(directory: Path) -> tuple[str, str]:
    """A module in `directory` that registers an env like the run's and leaves a marker file when imported:
    (its name, the env id naming it)."""
    tag = uuid.uuid4().hex[:8]   # a module and an env of their own for each test (this process imports some)
    name, env = f"planted_{tag}", f"Planted{tag}-v0"
    (directory / f"{name}.py").write_text(
        "import pathlib\n"
        f"pathlib.Path(__file__).with_name('{name}.imported').touch()\n"
        "import gymnasium as gym\n"
        "from tests.faulty_envs import FaultyEnv\n"
        f"gym.register(id='{env}', entry_point=FaultyEnv, kwargs={{'seeded': False}}, max_episode_steps=50)\n")
    return name, f"{name}:{env}"


def name_env(run: Path, env_id: str) -> None:
    """The run's saved config names `env_id`: in final.pt and in the overrides a resume replays."""
    final = run / "checkpoints" / "final.pt"
    bundle = load_checkpoint(final)
    bundle["config"]["env"]["id"] = env_id
    save_checkpoint(bundle, final)
    saved = run / ".hydra" / "overrides.yaml"
    saved.write_text(saved.read_text().replace("tests.faulty_envs:Unseeded-v0", env_id))


def load_as(loader: str, path: str, cwd: Path, capsys, monkeypatch) -> str:
    """`loader` of the run at `path` in `cwd`, refused: its one-line message."""
    if loader == "load":
        monkeypatch.chdir(cwd)
        with pytest.raises(ConfigError) as refused:
            rlexp.load(path)
        return str(refused.value)
    args = {"eval": ["eval", path, "episodes=1"], "export": ["export", path, "format=torchscript", "states=8"],
            "resume": ["train", f"resume={path}", "total_steps=400"]}[loader]
    proc = run_in_process(args, cwd, capsys, monkeypatch)
    assert proc.returncode == 2
    return one_line(proc)


@pytest.mark.parametrize("loader", ["eval", "export", "load", "resume"])
def test_a_saved_env_id_imports_nothing_from_the_current_directory(run, workdir, loader, capsys, monkeypatch):
    """`python -m rlexp` (and a notebook) looks in the current directory first: a module planted there beside a
    run that names it is not imported."""
    name, env_id = plant_module(workdir)
    name_env(run, env_id)
    monkeypatch.syspath_prepend(str(workdir))   # as `python -m rlexp` run in workdir has it
    before = snapshot(workdir)
    message = load_as(loader, "run", workdir, capsys, monkeypatch)
    assert f"env.id={env_id!r}, saved in {run.resolve()}, would import {name!r} from {workdir.resolve()}, the " \
           f"current directory" in message
    assert f"PYTHONPATH={workdir.resolve()} rlexp" in message and f"import {name} yourself before rlexp.load" in message
    assert snapshot(workdir) == before and name not in sys.modules   # no marker: not imported


def test_a_saved_env_id_imports_nothing_from_the_run_directory(run, workdir, monkeypatch):
    """A script beside the run (python <run>/look.py puts <run> first on sys.path) loading it: a module planted in
    the run directory is not imported."""
    name, env_id = plant_module(run)
    name_env(run, env_id)
    monkeypatch.syspath_prepend(str(run))
    with pytest.raises(ConfigError, match=f"would import {name!r} from {run.resolve()}, the run's own directory"):
        rlexp.load(run)
    assert not (run / f"{name}.imported").exists()


def test_a_link_in_the_current_directory_to_an_installed_file_is_found_there(run, workdir, capsys, monkeypatch):
    """A planted link is judged where Python finds it, not where it points (this.py prints when imported)."""
    (workdir / "zen.py").symlink_to(Path(sysconfig.get_paths()["stdlib"]) / "this.py")
    name_env(run, "zen:Planted-v0")
    monkeypatch.syspath_prepend(str(workdir))
    monkeypatch.chdir(workdir)
    with pytest.raises(ConfigError, match=f"would import 'zen' from {workdir.resolve()}, the current directory"):
        rlexp.load("run")
    assert "zen" not in sys.modules and "Beautiful is better" not in capsys.readouterr().out


def test_a_checkpoint_above_an_installed_location_leaves_it_trusted(run, workdir, monkeypatch):
    """Only the run's own directory is refused, not those below it: a checkpoint in ~ keeps ~/.venv installed."""
    site = workdir / "venv" / "site-packages"
    site.mkdir(parents=True)
    name, env_id = plant_module(site)
    name_env(run, env_id)
    shutil.copy(run / "checkpoints" / "final.pt", workdir / "final.pt")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(run)
    try:
        assert rlexp.load(workdir / "final.pt").env_id == env_id and (site / f"{name}.imported").exists()
    finally:
        sys.modules.pop(name, None)
        gym.registry.pop(env_id.split(":")[1], None)


def test_a_saved_env_id_never_imports_the_standard_library(run, workdir):
    name_env(run, "antigravity:Planted-v0")   # importing it opens a web browser
    with pytest.raises(ConfigError, match="names 'antigravity', a module of Python's standard library"):
        rlexp.load(run)
    assert "antigravity" not in sys.modules


@pytest.mark.parametrize("env_id", ["..planted:Planted-v0", ":Planted-v0", "a b:Planted-v0"])
def test_an_env_id_whose_module_is_no_module_name_is_refused(run, env_id):
    name_env(run, env_id)
    with pytest.raises(ConfigError, match=r"which is not a module name: dotted Python identifiers"):
        rlexp.load(run)


@pytest.mark.parametrize("opt_in", ["PYTHONPATH=.", "imported first"])
def test_a_user_who_trusts_the_module_opts_in(run, workdir, opt_in, monkeypatch):
    name, env_id = plant_module(workdir)
    name_env(run, env_id)
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    try:
        if opt_in == "PYTHONPATH=.":
            monkeypatch.setenv("PYTHONPATH", ".")
        else:
            __import__(name)
        agent = rlexp.load("run")
        assert agent.env_id == env_id and (workdir / f"{name}.imported").exists()
    finally:
        sys.modules.pop(name, None)
        gym.registry.pop(env_id.split(":")[1], None)


def test_an_env_module_on_pythonpath_still_loads_everywhere(run, workdir, capsys, monkeypatch):
    """The run's own env module (tests.faulty_envs, an installed location for this process) loads for eval,
    export and resume (which gets past the check to its budget's refusal); the training above imported it from
    the command line."""
    evaluated = run_in_process(["eval", "run", "episodes=1"], workdir, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr
    exported = run_in_process(["export", "run", "format=torchscript", "states=8"], workdir, capsys, monkeypatch)
    assert exported.returncode == 0, exported.stderr
    resumed = run_in_process(["train", "resume=run"], workdir, capsys, monkeypatch)
    assert resumed.returncode == 2 and "already at step 300 of total_steps=300" in one_line(resumed)


def test_eval_refuses_a_planted_module_as_typed(run, workdir):
    name, env_id = plant_module(workdir)
    name_env(run, env_id)
    proc = run_cli(["eval", "run"], cwd=workdir, fork=False)   # a new interpreter: what it imports from where
    assert proc.returncode == 2
    assert f"would import {name!r} from {workdir.resolve()}, the current directory" in one_line(proc)
    assert not (workdir / f"{name}.imported").exists() and not (run / "eval").exists()


# --- pickles ----------------------------------------------------------------------------------------------------------

class Planted:
    """Unpickling it (with weights_only=False) runs `code`."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple:
        return exec, (self.code,)


@pytest.mark.parametrize("loader", ["eval", "export", "load", "resume"])
def test_a_crafted_pickle_runs_nothing_in_any_loader(run, workdir, loader, capsys, monkeypatch):
    marker = workdir / "pickle_ran"
    payload = Planted(f"import pathlib; pathlib.Path({str(marker)!r}).touch()")
    for checkpoint in (run / "checkpoints").glob("*.pt"):   # every one, so a resume finds no other to fall back on
        bundle = load_checkpoint(checkpoint)
        bundle["config"]["note"] = payload
        torch.save(bundle, checkpoint)
    control = workdir / "control.pt"
    torch.save({"note": payload}, control)
    torch.load(control, weights_only=False)   # the payload is live: unpickled unsafely, it runs
    assert marker.exists()
    marker.unlink()
    control.unlink()
    before = snapshot(workdir)
    refused = "holds pickled code or objects that are not plain data (exec): rlexp never runs code from a checkpoint"
    if loader == "load":
        with pytest.raises(CheckpointError, match=rf"final.pt {re.escape(refused)}"):
            rlexp.load(run)
    else:
        args = {"eval": ["eval", "run", "episodes=1"], "export": ["export", "run", "format=torchscript"],
                "resume": ["train", "resume=run", "total_steps=400"]}[loader]
        proc = run_in_process(args, workdir, capsys, monkeypatch)
        newest = "step_300.pt" if loader == "resume" else "final.pt"
        assert proc.returncode == (2 if loader == "resume" else 1) and f"{newest} {refused}" in one_line(proc)
    assert not marker.exists() and snapshot(workdir) == before


@pytest.mark.parametrize("key, value, message", [
    (("network", "hidden_sizes"), [100_000, 100_000],
     r"its config builds networks of 30,002,000,003 parameters, but its agent holds [\d,]+ numbers: .* nothing was "
     r"built"),
    (("algo", "gamma"), "abc", r"its config does not build an agent \(ValidationError: Value 'abc'"),
    (("env",), None, r"its config does not build an agent \(TypeError: "),
])
def test_a_saved_config_altered_to_build_another_agent_is_refused(run, key, value, message):
    """Before anything is allocated: networks of 30 billion parameters would take 120 GB first."""
    final = run / "checkpoints" / "final.pt"
    bundle = load_checkpoint(final)
    node = bundle["config"]
    for part in key[:-1]:
        node = node[part]
    node[key[-1]] = value
    save_checkpoint(bundle, final)
    with pytest.raises(ConfigError, match=message):
        rlexp.load(run)


# --- a loaded agent checks what it is given --------------------------------------------------------------------------

@pytest.fixture
def agent(run):
    return rlexp.load(run)


@pytest.mark.parametrize("obs, message", [
    (np.array([0.1, np.nan, 0.3], np.float32), r"observations hold 1 NaN or infinite value\(s\) \(the first at index "
                                               r"\(1,\): nan\); this agent \(td3 on tests.faulty_envs:Unseeded-v0\)"),
    (np.array([[0.1, 0.2, 0.3], [np.inf, 0.0, -np.inf]]), r"hold 2 NaN or infinite value\(s\) \(the first at row 1, "
                                                           r"index \(0,\): inf\)"),
    (torch.tensor([0.0, float("nan"), 0.0]), r"hold 1 NaN"),
    (np.zeros(4), r"observations of shape \(4,\): this agent .* takes one of shape \(3,\)"),
    (np.zeros((2, 2)), r"observations of shape \(2, 2\)"),
    ([[0.0, 1.0], [0.0]], r"observations must be an array of numbers: .*inhomogeneous"),
    (np.array(["a", "b", "c"]), r"must be numbers"),
])
def test_act_refuses_what_no_env_of_the_run_returns(agent, obs, message):
    with pytest.raises(ValueError, match=message) as refused:
        agent.act(obs)
    assert "\n" not in str(refused.value)


def test_eval_of_an_env_that_returns_nan_is_the_envs_fault_in_one_line(run, workdir, capsys, monkeypatch):
    """What `act` refuses in `rlexp eval` came from the env: exit 1, not a ValueError traceback."""
    final = run / "checkpoints" / "final.pt"
    bundle = load_checkpoint(final)
    bundle["config"]["env"].update(id="tests.faulty_envs:NanObservation-v0", kwargs={"fault_at": 3})
    save_checkpoint(bundle, final)
    proc = run_in_process(["eval", "run", "episodes=1"], workdir, capsys, monkeypatch)
    assert proc.returncode == 1 and "tests.faulty_envs:NanObservation-v0 returned an observation the agent cannot " \
        "act on: observations hold 1 NaN or infinite value(s)" in one_line(proc)


def test_act_takes_any_numpy_layout(agent):
    obs = np.arange(6, dtype=np.float32).reshape(2, 3) / 10
    assert np.array_equal(agent.act(obs[::-1]), agent.act(obs[::-1].copy()))   # negative strides: a copy is acted on


def test_act_refuses_an_explore_that_is_not_a_flag(agent):
    with pytest.raises(ValueError, match="explore='no' must be True or False"):
        agent.act(np.zeros(3, np.float32), explore="no")
    assert agent.act(np.zeros(3, np.float32), explore=np.bool_(True)).shape == (1,)


@pytest.mark.parametrize("kwargs, message", [
    ({"seed": -1}, r"seed=-1 is outside \[0, 4294967295\]"),
    ({"seed": 2**32}, r"seed=4294967296 is outside"),
    ({"seed": 1.5}, r"seed=1.5 must be an integer"),
    ({"seed": True}, r"seed=True must be an integer"),
    ({"checkpoint": "last"}, r"checkpoint='last' must be 'final' or 'best'"),
    ({"device": None}, r"device=None must be a string"),
    ({"device": "tpu"}, r"device='tpu' is not"),
])
def test_load_checks_its_arguments_as_the_cli_does(run, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        rlexp.load(run, **kwargs)


def test_load_takes_a_numpy_seed_and_refuses_a_path_that_is_not_one(run):
    assert rlexp.load(run, seed=np.int64(3)).step == 300
    with pytest.raises(ConfigError, match=r"path=None must be a run directory or a checkpoint file"):
        rlexp.load(None)  # type: ignore[arg-type]

"""`rlexp` as a user runs it: a subprocess in a fresh directory, tiny budgets."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import TINY, run_cli, run_in_process, train_in_process
from tests.test_eval import RUN as EVAL_RUN
from tests.test_eval import finished_run as eval_run


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_dqn_run_writes_tensorboard_checkpoints_and_results(workdir):
    proc = run_cli(["train", "algo=dqn", "env=CartPole-v1", "total_steps=600", "algo.learning_starts=100",
                    "algo.train_freq=4", "algo.gradient_steps=1", *TINY], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    run_dir = next((workdir / "outputs" / "dqn_CartPole-v1").iterdir())  # the default run directory

    results = json.loads((run_dir / "results.json").read_text())
    for key in ("eval_return_mean", "eval_return_std", "total_steps", "wall_time_s", "sps"):
        assert key in results
    assert results["total_steps"] == 600 and len(results["eval_returns"]) == 2 and results["num_envs"] == 1

    tags = scalars(run_dir)
    for tag in ("charts/episodic_return", "charts/episodic_length", "charts/SPS", "charts/epsilon",
                "losses/td_loss", "losses/q_values", "eval/mean_return", "eval/std_return"):
        assert tags.get(tag), f"no {tag} in TensorBoard"
    assert [step for step, _ in tags["eval/mean_return"]] == [200, 400, 600]
    assert tags["eval/mean_return"][-1][1] == pytest.approx(results["eval_return_mean"])
    assert tags["charts/epsilon"][0][1] > tags["charts/epsilon"][-1][1]

    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["best.pt", "final.pt", "step_200.pt", "step_400.pt", "step_600.pt"]
    final = torch.load(run_dir / "checkpoints" / "final.pt", weights_only=True)
    assert final["step"] == 600 and final["algo"] == "dqn" and "q_network" in final["agent"]
    assert final["config"]["algo"]["name"] == "dqn"
    assert "train.log" in {p.name for p in run_dir.iterdir()}
    assert "eval return" in proc.stdout  # plain progress lines when not in a terminal


# DDPG with its rounds at episode ends (its step-wise rounds are TD3's code path and the multirun's and the
# paper preset's runs)
@pytest.mark.parametrize("algo, rounds", [("td3", []),
                                         ("ddpg", ["algo.train_freq_unit=episode", "algo.gradient_steps=-1"])])
def test_actor_critic_runs_log_actor_and_critic_losses(workdir, algo, rounds):
    # (in process: the subject is what is logged; TD3's and DDPG's runs as typed are the multirun's and the
    # presets' below)
    proc = train_in_process(["train", f"algo={algo}", "env=Pendulum-v1", "total_steps=400", "algo.learning_starts=100",
                             "algo.noise.type=ou", "network.hidden_sizes=[32,32]", "hydra.run.dir=run", *rounds,
                             *TINY], workdir)
    assert proc.returncode == 0, proc.stderr
    tags = scalars(workdir / "run")
    for tag in ("losses/critic_loss", "losses/actor_loss", "losses/q_values", "eval/mean_return"):
        assert tags.get(tag), f"no {tag} in TensorBoard"
    agent = torch.load(workdir / "run" / "checkpoints" / "final.pt", weights_only=True)["agent"]
    assert agent["critic"]["layers.0.weight"].shape[0] == (2 if algo == "td3" else 1)


def test_sac_runs_on_several_envs_logs_its_temperature_and_evaluates(workdir, capsys, monkeypatch):
    # (the MountainCar preset fixes alpha at 0.1, explores with gSDE and updates 32 times every 32 steps: the
    # defaults here)
    # (in process: the subject is what is logged and evaluated; SAC's runs as typed are test_resume.py's and
    # test_images_any.py's)
    proc = train_in_process(["train", "algo=sac", "env=MountainCarContinuous-v0", "total_steps=400",
                             "algo.learning_starts=100", "env.num_envs=2", "network.hidden_sizes=[32,32]",
                             "hydra.run.dir=run", "algo.ent_coef=auto", "algo.train_freq=1", "algo.gradient_steps=1",
                             "algo.use_sde=false", *TINY], workdir)
    assert proc.returncode == 0, proc.stderr
    tags = scalars(workdir / "run")
    for tag in ("losses/critic_loss", "losses/actor_loss", "losses/ent_coef", "losses/entropy", "eval/mean_return"):
        assert tags.get(tag), f"no {tag} in TensorBoard"
    alpha = [value for _, value in tags["losses/ent_coef"]]
    assert alpha[0] < 1.0 and alpha[-1] < alpha[0]      # tuned down from 1 while the policy is still broad
    agent = torch.load(workdir / "run" / "checkpoints" / "final.pt", weights_only=True)["agent"]
    assert agent["critic"]["layers.0.weight"].shape[0] == 2 and "log_ent_coef" in agent
    evaluated = run_in_process(["eval", "run", "episodes=2"], workdir, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr


def test_same_seed_same_run(workdir, tmp_path_factory, capsys, monkeypatch):
    # a: tests/test_eval.py's run (made once per session by the same command, seed 0 by default), copied
    shutil.copytree(eval_run(tmp_path_factory) / "run", workdir / "a", symlinks=True)
    assert run_cli([*EVAL_RUN, "hydra.run.dir=b"], cwd=workdir).returncode == 0
    args = EVAL_RUN
    a, b = (json.loads((workdir / name / "results.json").read_text()) for name in ("a", "b"))
    assert a["eval_returns"] == b["eval_returns"]
    pa, pb = (torch.load(workdir / n / "checkpoints" / "final.pt", weights_only=True)["agent"] for n in ("a", "b"))
    assert all(torch.equal(pa["actor"][k], pb["actor"][k]) for k in pa["actor"])
    assert train_in_process([*args, "seed=6", "hydra.run.dir=c"], workdir).returncode == 0
    c = json.loads((workdir / "c" / "results.json").read_text())
    assert c["eval_returns"] != a["eval_returns"]
    # A new run never writes into a directory that holds another run.
    before = (workdir / "a" / "results.json").read_text()
    again = run_in_process([*args, "hydra.run.dir=a"], workdir, capsys, monkeypatch)
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert "hydra.run.dir=a already holds a run" in again.stderr and "rlexp train resume=a" in again.stderr
    assert (workdir / "a" / "results.json").read_text() == before


# async; several sync envs from the command line: tests/test_vector_cli.py (every family, the budgets and rounds)
@pytest.mark.parametrize("vectorization", ["async"])
def test_several_envs_train_together_from_the_command_line(workdir, vectorization):
    proc = run_cli(["train", "algo=dqn", "env=CartPole-v1", "env.num_envs=4", f"env.vectorization={vectorization}",
                    "total_steps=600", "algo.learning_starts=100", "network.hidden_sizes=[16]", "hydra.run.dir=run",
                    *TINY], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert f"4 env(s) ({vectorization})" in proc.stdout
    results = json.loads((workdir / "run" / "results.json").read_text())
    assert results["num_envs"] == 4 and results["total_steps"] == 600 and results["status"] == "completed"
    tags = scalars(workdir / "run")
    assert [step for step, _ in tags["eval/mean_return"]] == [200, 400, 600]  # every 200 env steps of all envs
    names = sorted(p.name for p in (workdir / "run" / "checkpoints").iterdir())
    assert names == ["best.pt", "final.pt", "step_200.pt", "step_400.pt", "step_600.pt"]


def test_multirun_sweeps_every_combination(workdir):
    proc = run_cli(["train", "--multirun", "algo=ddpg,td3", "seed=0,1", "env=Pendulum-v1", "total_steps=200",
                    "algo.learning_starts=100", "network.hidden_sizes=[16]", "hydra.sweep.dir=sweep", *TINY],
                   cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    jobs = sorted(p for p in (workdir / "sweep").iterdir() if p.is_dir() and (p / "results.json").exists())
    assert len(jobs) == 4
    seen = {(json.loads((j / "results.json").read_text())["algo"], json.loads((j / "results.json").read_text())["seed"])
            for j in jobs}
    assert seen == {("ddpg", 0), ("ddpg", 1), ("td3", 0), ("td3", 1)}


# --cfg job, --help and usage errors as a user types them: tests/test_reliability.py (closed pipes, usage errors)
def test_cfg_job_prints_the_composed_config_and_runs_nothing(workdir, capsys, monkeypatch):
    proc = run_in_process(["train", "--cfg", "job", "algo=ddpg", "env=Pendulum-v1", "algo.tau=0.01"], workdir, capsys,
                          monkeypatch)
    assert proc.returncode == 0, proc.stderr
    assert "name: ddpg" in proc.stdout and "tau: 0.01" in proc.stdout and "id: Pendulum-v1" in proc.stdout
    assert not (workdir / "outputs").exists()


def test_help_lists_commands_and_config_groups(workdir, capsys, monkeypatch):
    top = run_in_process(["--help"], workdir, capsys, monkeypatch)
    assert top.returncode == 0 and "train" in top.stdout
    train = run_in_process(["train", "algo=ppo", "--help"], workdir, capsys, monkeypatch)
    assert train.returncode == 0
    for text in ("algo: a2c, crossq, ddpg, dqn, ppo, qrdqn, rainbow, sac, td3, tqc", "Pendulum-v1", "tuned",
                 "rlexp train"):
        assert text in train.stdout
    # the chosen algorithm's keys, typed and documented from the schema (rlexp/config/docs.py)
    keys = train.stdout.split("== Keys (of algo=ppo", 1)[1]
    assert "  algo.target_kl (float | null)\n      the epochs stop once the approximate KL passes" in keys
    assert "  seeds (list[int] | null)" in keys


def test_unknown_command_and_unknown_key(workdir, capsys, monkeypatch):
    proc = run_in_process(["fly"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and "unknown command 'fly'" in proc.stderr
    proc = run_in_process([], workdir, capsys, monkeypatch)  # no command at all: one line, not the whole usage
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "give a command" in proc.stderr
    proc = run_in_process(["train", "algo.lrr=1", "hydra.run.dir=run"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and "algo.lrr is not a config key; did you mean algo.lr?" in proc.stderr


@pytest.mark.parametrize("algo, env", [("dqn", "LunarLander-v3"),
                                       pytest.param("ddpg", "BipedalWalker-v3", marks=pytest.mark.slow),
                                       ("td3", "HalfCheetah-v5"),
                                       pytest.param("td3", "Hopper-v5", marks=pytest.mark.slow)])
def test_box2d_and_mujoco_presets_train_for_real(workdir, algo, env):
    # (in process: the subject is the preset on the real env; the command line's runs are the others here)
    proc = train_in_process(["train", f"algo={algo}", f"env={env}", "total_steps=300", "algo.learning_starts=100",
                             "algo.batch_size=32", "network.hidden_sizes=[32,32]", "eval.episodes=1", "eval.every=0",
                             "checkpoint.every=0", "log.progress=none", "hydra.run.dir=run",
                             "+env.kwargs.max_episode_steps=100"], workdir)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((workdir / "run" / "results.json").read_text())
    assert results["env_id"] == env and results["total_steps"] == 300

"""PPO and A2C as a user runs them: train, the metrics they log, `rlexp eval` with the saved normalization, a
sweep over both with the joblib launcher and `rlexp plot` of it, an Optuna search, and the refusals."""

import csv
import importlib.util
import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlexp.sweeps.placement import available_cpus
from tests.conftest import TINY, run_cli, run_in_process, train_in_process

ON_POLICY_LOSSES = ("losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/explained_variance")


def tags(run_dir):
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return set(accumulator.Tags()["scalars"])


def test_a2c_trains_on_several_envs_logs_its_losses_and_evaluates(workdir, capsys, monkeypatch):
    # (in process: the subject is what is logged; A2C as typed is the joblib sweep's and the env families')
    proc = train_in_process(["train", "algo=a2c", "env=CartPole-v1", "total_steps=2000", "env.num_envs=4",
                             "hydra.run.dir=run", *TINY], workdir)
    assert proc.returncode == 0, proc.stderr
    logged = tags(workdir / "run")
    assert set(ON_POLICY_LOSSES) <= logged and "charts/episodic_return" in logged
    assert "losses/approx_kl" not in logged     # a ratio of 1 by construction: nothing to log
    results = json.loads((workdir / "run" / "results.json").read_text())
    assert results["total_steps"] == 2000 and results["num_envs"] == 4 and results["status"] == "completed"
    evaluated = run_in_process(["eval", "run", "episodes=2"], workdir, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr and "a2c on CartPole-v1" in evaluated.stdout


def test_ppo_with_normalization_saves_its_statistics_and_eval_uses_them(workdir, capsys, monkeypatch):
    proc = run_cli(["train", "algo=ppo", "env=Pendulum-v1", "env.normalize.obs=true", "env.normalize.reward=true",
                    "total_steps=1000", "algo.n_steps=128", "env.num_envs=2", "algo.batch_size=64",
                    "algo.n_epochs=2", "hydra.run.dir=run", *TINY], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    # whole rollouts: 1000 steps rounded up to 4 rollouts of 128 x 2, and said so
    assert "rounded up to whole rollouts" in proc.stdout + proc.stderr
    results = json.loads((workdir / "run" / "results.json").read_text())
    assert results["total_steps"] == 1024
    logged = tags(workdir / "run")
    assert set(ON_POLICY_LOSSES) | {"losses/approx_kl", "losses/clip_fraction"} <= logged
    final = torch.load(workdir / "run" / "checkpoints" / "final.pt", weights_only=True)
    stats = final["normalization"]["obs_rms"]
    assert stats["mean"].shape == (3,) and stats["count"] > 1000
    # `rlexp eval` with the run's own evaluation seed plays the same episodes with the same frozen statistics
    evaluated = run_in_process(["eval", "run", "episodes=2"], workdir, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr
    again = json.loads((workdir / "run" / "eval" / "final.json").read_text())
    assert again["eval_returns"] == results["eval_returns"]


def test_a_sweep_over_ppo_and_a2c_runs_with_joblib_and_plots(workdir, capsys, monkeypatch):
    # (also the joblib launcher's test: jobs in parallel, a thread share each, the summary)
    # each algorithm with its CartPole preset (8 envs; rollouts of 32 and 5 steps), two rollouts' worth of PPO
    proc = run_cli(["train", "--multirun", "algo=ppo,a2c", "env=CartPole-v1", "seed=0,1", "hydra/launcher=joblib",
                    "hydra.launcher.n_jobs=2", "total_steps=512", "eval.every=256", "eval.episodes=2",
                    "checkpoint.every=0", "log.progress=none", "hydra.sweep.dir=sweep2"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    # the jobs ran two at a time, each with its share of the cores as torch threads
    logs = proc.stdout + proc.stderr
    assert "Joblib.Parallel(n_jobs=2" in logs
    share = max(available_cpus() // 2, 1)   # the cores this machine gives the sweep, split between 2 workers
    assert logs.count(f" {share} torch threads") == 4, logs
    rows = list(csv.DictReader((workdir / "sweep2" / "summary.csv").open()))
    assert sorted((r["overrides"], r["status"]) for r in rows) == sorted(
        (f"algo={a} seed={s}", "completed") for a in ("ppo", "a2c") for s in (0, 1))
    assert "best: job" in proc.stdout
    plotted = run_in_process(["plot", "sweep2"], workdir, capsys, monkeypatch)
    assert plotted.returncode == 0, plotted.stderr
    assert "algo=a2c" in plotted.stdout and "algo=ppo" in plotted.stdout


@pytest.mark.parametrize("args, expected", [
    # (every algorithm reads images through the Nature CNN: tests/test_images.py, tests/test_images_any.py; SAC on
    # Atari's discrete actions is refused for its actions)
    # (an action space refused as a user types it: tests/test_new_algorithm.py's)
    (["algo=sac", "env=atari"], "algo=sac needs a continuous (Box) action space"),
    (["algo=a2c", "env=CartPole-v1", "algo.n_steps=64", "total_steps=100"],
     "algo.n_steps=64 x env.num_envs=16 = 1024 env steps per rollout is more than total_steps=100"),
    (["algo=ppo", "env=CartPole-v1", "algo.batch_size=100"],   # the preset's rollout: 16 steps x 16 envs
     "does not divide the rollout's 256 samples (algo.n_steps=16 x env.num_envs=16), so each epoch would end on a "
     "short minibatch; use algo.batch_size=64 or 128"),
    (["algo=dqn", "env=atari", "env.normalize.obs=true"], "env.normalize.obs=true on"),
    (["algo=ppo", "env=CartPole-v1", "algo.use_sde=true"], "algo.use_sde=true is gSDE, exploration noise for "
                                                          "continuous actions, but CartPole-v1"),
])
def test_on_policy_refusals_are_one_line(workdir, rlexp, args, expected):
    proc = rlexp(["train", *args, "hydra.run.dir=run"], cwd=workdir)
    assert proc.returncode == 2 and expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, \
        proc.stderr
    assert not (workdir / "run" / "checkpoints").exists()


def test_an_optuna_search_over_ppo_runs_trials_of_batched_seeds(workdir):
    # (two trials at a time in joblib's workers, reporting to one SQLite study)
    proc = run_cli(["train", "--multirun", "hparams_search=ppo_cartpole", "hydra.sweeper.n_trials=2",
                    "hydra.sweeper.n_jobs=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                    "hydra.sweeper.seeds=[0,1]", "total_steps=512", "eval.every=256", "eval.episodes=1",
                    "checkpoint.every=0", "log.progress=none", "torch_threads=1", "hydra.sweep.dir=sweep"],
                   cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((workdir / "sweep" / "summary.csv").open()))
    assert len(rows) == 2 and all(r["status"] == "completed" for r in rows)
    assert sorted(p.parent.name for p in (workdir / "sweep").glob("trial_*/seed_*/results.json")) == \
        ["seed_0", "seed_0", "seed_1", "seed_1"]   # (each trial one batched run of both seeds)
    import optuna

    study = optuna.load_study(study_name="ppo_cartpole", storage=f"sqlite:///{workdir / 'sweep' / 'optuna.db'}")
    assert [sorted(t.intermediate_values) for t in study.trials] == [[256, 512]] * 2


ENVPOOL = pytest.mark.skipif(importlib.util.find_spec("envpool") is None, reason='needs pip install "rlexp[envpool]"')


@pytest.mark.parametrize("args", [
    ["algo=ppo", "env=LunarLander-v3", "env.vectorization=async", "algo.batch_size=32"],
    ["algo=a2c", "env=LunarLanderContinuous-v3", "env.vectorization=sync"],
    ["algo=ppo", "env=HalfCheetah-v5", "env.vectorization=async", "algo.batch_size=32", "algo.use_sde=true"],
    pytest.param(["algo=a2c", "env=HalfCheetah-v5", "env.vectorization=envpool", "env.normalize.obs=true"],
                 marks=[ENVPOOL, pytest.mark.slow]),
], ids=["box2d-discrete-async", "box2d-continuous", "mujoco-gsde-async", "mujoco-envpool"])
def test_ppo_and_a2c_train_on_every_env_family_they_fit(workdir, args):
    proc = run_cli(["train", *args, "env.num_envs=2", "algo.n_steps=16", "total_steps=64", "eval.episodes=1",
                    "eval.every=0", "checkpoint.every=0", "log.progress=none", "hydra.run.dir=run"], cwd=workdir,
                   timeout=600)
    assert proc.returncode == 0, proc.stderr
    done = json.loads((workdir / "run" / "results.json").read_text())
    assert done["status"] == "completed" and done["total_steps"] == 64 and done["num_envs"] == 2


def test_eval_reads_a_checkpoint_made_before_the_newest_keys_and_refuses_an_unreadable_one_in_one_line(workdir, capsys,
                                                                                                         monkeypatch):
    from rlexp.io.checkpoints import load_checkpoint, save_checkpoint

    proc = train_in_process(["train", "algo=ppo", "env=Pendulum-v1", "total_steps=256", "algo.n_steps=128",
                             "env.num_envs=2", "algo.batch_size=64", "algo.use_sde=false", "hydra.run.dir=run", *TINY],
                            workdir)   # (the subject: eval of its checkpoint)
    assert proc.returncode == 0, proc.stderr
    final = workdir / "run" / "checkpoints" / "final.pt"
    bundle = load_checkpoint(final)
    expected = json.loads((workdir / "run" / "results.json").read_text())["eval_returns"]
    # as a run made before gSDE existed
    del bundle["config"]["algo"]["use_sde"], bundle["config"]["algo"]["sde_sample_freq"]
    save_checkpoint(bundle, final)
    evaluated = run_in_process(["eval", "run", "episodes=2"], workdir, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((workdir / "run" / "eval" / "final.json").read_text())["eval_returns"] == expected
    bundle["config"]["algo"]["use_sde"] = True   # weights that do not fit the agent the config builds
    save_checkpoint(bundle, final)
    refused = run_in_process(["eval", "run", "episodes=2"], workdir, capsys, monkeypatch)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "the saved agent does not fit the one its config builds here" in refused.stderr
    del bundle["config"]["algo"]["n_steps"]   # a key no version of rlexp could do without
    save_checkpoint(bundle, final)
    refused = run_in_process(["eval", "run", "episodes=2"], workdir, capsys, monkeypatch)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "lacks 'n_steps', which this version of rlexp needs" in refused.stderr

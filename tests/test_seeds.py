"""Many seeds as one model, as a user runs it: `rlexp train seeds=[...]` writes one run directory per seed that
plot, eval and resume take as a single run's; the same seed list gives the same runs; a seed that fails ends alone;
a signal stops every seed at the same step, each with its checkpoint."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlexp.io.checkpoints import load_checkpoint
from tests.conftest import (
    interrupt_mid_run,
    made_once,
    run_cli,
    run_in_process,
    snapshot,
    start_cli,
    train_in_process,
    wait_for,
)

RUN = ["train", "algo=dqn", "env=CartPole-v1", "total_steps=900", "algo.learning_starts=300",
       "network.hidden_sizes=[32,32]", "eval.every=450", "eval.episodes=2", "checkpoint.every=300", "log.every=100",
       "log.progress=none", "torch_threads=1"]
FAULTY = "tests.faulty_envs"


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def q_network(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "final.pt")["agent"]["q_network"]


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory) -> Path:
    """A finished run of seeds=[0,1,2] (600 steps), trained once per session (made_once); tests copy it."""
    def make(root: Path) -> None:
        proc = train_in_process([*RUN, "total_steps=600", "seeds=[0,1,2]", "hydra.run.dir=run"], root)
        assert proc.returncode == 0, proc.stderr

    return made_once(tmp_path_factory, "seeds-three", make)[0] / "run"


def test_each_seed_is_a_run_of_its_own_that_plot_eval_and_resume_take_as_one(workdir, capsys, monkeypatch):
    proc = run_cli([*RUN, "seeds=[3,1,4]", "hydra.run.dir=run"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    summary = results(workdir / "run")
    assert summary["status"] == "completed" and list(summary["seeds"]) == ["3", "1", "4"]
    returns = []
    for seed in (3, 1, 4):
        seed_dir = workdir / "run" / f"seed_{seed}"
        done = results(seed_dir)
        assert done["status"] == "completed" and done["total_steps"] == 900 and done["seed"] == seed
        assert {p.name for p in (seed_dir / "checkpoints").iterdir()} >= {"final.pt", "best.pt", "step_900.pt"}
        assert list(seed_dir.glob("events.out.tfevents.*"))
        returns.append(done["eval_return_mean"])
    assert summary["eval_return_mean"] == pytest.approx(sum(returns) / 3)
    # Independent members: each seed's network is its own (a checkpoint holds its slice only).
    assert not torch.equal(q_network(workdir / "run" / "seed_3")["net.0.weight"],
                           q_network(workdir / "run" / "seed_1")["net.0.weight"])
    # (plot and eval in process: their commands as a user types them are tests/test_plot.py's and test_eval.py's)
    plot = run_in_process(["plot", "run", "out=curves.png"], workdir, capsys, monkeypatch)
    assert plot.returncode == 0 and "warning" not in plot.stderr, plot.stderr   # the parent is no run to skip
    assert "dqn on CartPole-v1  3" in plot.stdout   # the three seeds pooled in one group
    evaluated = run_in_process(["eval", "run/seed_1", "episodes=2"], workdir, capsys, monkeypatch)
    assert evaluated.returncode == 0 and f"{results(workdir / 'run' / 'seed_1')['eval_return_mean']:.2f}" in \
        evaluated.stdout, evaluated.stderr
    longer = run_cli(["train", "resume=run/seed_1", "total_steps=1200"], cwd=workdir)
    assert longer.returncode == 0, longer.stderr
    assert results(workdir / "run" / "seed_1")["total_steps"] == 1200


def test_the_same_seed_list_gives_the_same_runs_bit_for_bit(workdir, three_seeds):
    # the shared run (made by the same command, in another directory) against this one
    assert run_cli([*RUN, "total_steps=600", "seeds=[0,1,2]", "hydra.run.dir=b"], cwd=workdir).returncode == 0
    for seed in (0, 1, 2):
        a, b = three_seeds / f"seed_{seed}", workdir / "b" / f"seed_{seed}"
        assert results(a)["eval_returns"] == results(b)["eval_returns"]
        assert all(torch.equal(q_network(a)[k], q_network(b)[k]) for k in q_network(a))


def test_a_seed_that_fails_ends_alone_and_the_others_finish(workdir):
    proc = run_cli(["train", "algo=dqn", f"env.id={FAULTY}:NanReward-v0", "+env.kwargs.fault_at=200",
                    "+env.kwargs.fault_seed=1", "seeds=[0,1,2]", "total_steps=500", "algo.learning_starts=100",
                    "network.hidden_sizes=[16]", "checkpoint.every=100", "eval.every=0", "eval.episodes=1",
                    "log.progress=none", "hydra.run.dir=run"], cwd=workdir)
    assert proc.returncode == 1, proc.stderr
    failed = results(workdir / "run" / "seed_1")
    assert failed["status"] == "failed" and "non-finite reward nan" in failed["error"] and "at step 200" in \
        failed["error"]
    for seed in (0, 2):
        assert results(workdir / "run" / f"seed_{seed}")["status"] == "completed"
    summary = results(workdir / "run")
    assert summary["status"] == "failed" and summary["seeds"]["1"]["status"] == "failed"
    assert summary["seeds"]["0"]["status"] == summary["seeds"]["2"]["status"] == "completed"
    assert "seeds [1] failed" in proc.stderr.strip().splitlines()[-1]


def test_a_signal_stops_every_seed_at_the_same_step_each_with_its_checkpoint(workdir):
    proc = start_cli([*RUN, "total_steps=20000", "seeds=[0,1]", "hydra.run.dir=run"], cwd=workdir)
    wait_for(workdir / "run" / "seed_1" / "checkpoints" / "step_600.pt", proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    stopped = [results(workdir / "run" / f"seed_{seed}") for seed in (0, 1)]
    assert all(r["status"] == "interrupted" for r in stopped) and stopped[0]["step"] == stopped[1]["step"]
    for seed in (0, 1):
        assert (workdir / "run" / f"seed_{seed}" / "checkpoints" / f"step_{stopped[0]['step']}.pt").is_file()


def test_a_sweep_of_seed_batches_with_several_envs_each_plots_as_groups_of_seeds(workdir, capsys, monkeypatch):
    proc = run_cli(["train", "--multirun", "algo=dqn", "env=CartPole-v1", "seeds=[0,1]", "env.num_envs=2",
                    "algo.lr=1e-3,5e-4", "total_steps=600", "algo.learning_starts=200", "network.hidden_sizes=[16]",
                    "eval.every=0", "eval.episodes=1", "checkpoint.every=0", "log.progress=none", "torch_threads=1",
                    "hydra.sweep.dir=sweep"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    jobs = sorted(d for d in (workdir / "sweep").iterdir() if d.is_dir())
    assert len(jobs) == 2
    for job in jobs:
        assert results(job)["status"] == "completed" and results(job)["wall_time_s"] > 0
        for seed in (0, 1):
            done = results(job / f"seed_{seed}")
            assert done["num_envs"] == 2 and done["total_steps"] == 600 and done["seed"] == seed
    plot = run_in_process(["plot", "sweep", "out=curves.png"], workdir, capsys, monkeypatch)
    assert plot.returncode == 0, plot.stderr
    assert plot.stdout.count("  2  ") == 2, plot.stdout   # two groups (the learning rates), two seeds each


KILLED = {
    # Rainbow (prioritized replay, 3-step returns, noisy layers, C51): each seed's priorities, windows, beta
    # schedule and noise generator resume too
    "dqn": [*[a if a != "algo=dqn" else "algo=rainbow" for a in RUN], "total_steps=900", "seeds=[0,1]",
            "algo.atoms=11"],
    # OU noise (a state per env) and target smoothing: each seed's noise processes and generators resume too
    "td3": ["train", "algo=td3", "env=Pendulum-v1", "total_steps=1000", "algo.learning_starts=200",
            "network.hidden_sizes=[32]", "algo.noise.type=ou", "eval.every=500", "eval.episodes=2",
            "checkpoint.every=300", "log.every=100", "log.progress=none", "torch_threads=1", "seeds=[0,1]"],
}
# its tuned alpha, alpha's Adam moments and each seed's policy generator resume too
KILLED["sac"] = ["train", "algo=sac", *[a for a in KILLED["td3"][2:] if a != "algo.noise.type=ou"]]
# CrossQ with HER on two envs: each seed's batch renormalisation statistics (renormalising from the 40th update
# on), its policy delay's phase and last policy metrics, its replay's episode steps and lengths per env stream and
# its relabelling draws resume too
KILLED["crossq"] = ["train", "algo=crossq", "env.id=tests.toy_envs:BitFlippingContinuous-v0", "algo.her=true",
                    "env.num_envs=2", "total_steps=700", "eval.every=600",
                    *[a for a in KILLED["sac"][3:] if a not in ("total_steps=1000", "eval.every=500")],
                    "algo.critic_hidden_sizes=[32]", "algo.batch_renorm_warmup_steps=40", "algo.batch_size=64"]
# cut mid-rollout, with each seed's target_kl stop, Adam step counts, shuffles, gSDE matrices and normalization
# statistics
KILLED["ppo"] = ["train", "algo=ppo", "env=Pendulum-v1", "total_steps=1600", "env.num_envs=2", "algo.n_steps=64",
                 "algo.batch_size=32", "algo.n_epochs=4", "algo.target_kl=0.005", "algo.use_sde=true",
                 "algo.sde_sample_freq=7", "network.hidden_sizes=[32]", "env.normalize.obs=true",
                 "env.normalize.reward=true", "eval.every=1200", "eval.episodes=2", "checkpoint.every=300",
                 "log.every=128", "log.progress=none", "torch_threads=1", "seeds=[0,1]"]
NETWORKS = {"dqn": ("q_network", "target_network"), "td3": ("actor", "actor_target", "critic", "critic_target"),
            "sac": ("actor", "critic", "critic_target"), "crossq": ("actor", "critic"), "ppo": ("policy",)}
LOSSES = {"dqn": "losses/td_loss", "td3": "losses/critic_loss", "sac": "losses/ent_coef",
          "crossq": "losses/actor_loss", "ppo": "losses/policy_loss"}


# TD3's and SAC's batches resume as DQN's do (the replay's state per seed): they run under -m slow
@pytest.mark.parametrize("algo", ["dqn", "ppo", "crossq", pytest.param("td3", marks=pytest.mark.slow),
                                  pytest.param("sac", marks=pytest.mark.slow)])
def test_a_killed_seeds_run_resumes_to_exactly_the_uninterrupted_end(workdir, algo):
    args = KILLED[algo]
    reference = train_in_process([*args, "hydra.run.dir=reference"], workdir)   # the CLI's run, in this process
    assert reference.returncode == 0, reference.stderr
    # even mid-save of one seed's checkpoint
    delay = interrupt_mid_run([*args, "hydra.run.dir=run"], workdir,
                              workdir / "run" / "seed_1" / "checkpoints" / "step_300.pt", signal.SIGKILL,
                              workdir / "reference")
    resumed = run_cli(["train", "resume=run"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming seeds [0, 1] from step" in resumed.stdout
    for seed in (0, 1):
        reference, run = (workdir / name / f"seed_{seed}" for name in ("reference", "run"))
        a, b = (load_checkpoint(d / "checkpoints" / "final.pt")["agent"] for d in (reference, run))
        for module in NETWORKS[algo]:
            assert all(torch.equal(a[module][k], b[module][k]) for k in a[module]), f"seed {seed} delay {delay:.2f}"
        assert results(reference)["eval_returns"] == results(run)["eval_returns"]
        tags = scalars(reference), scalars(run)
        for tag in ("charts/episodic_return", "eval/mean_return", LOSSES[algo]):
            assert tags[0][tag] == tags[1][tag], f"{tag} of seed {seed} differs (delay {delay:.2f} s)"
    assert results(workdir / "run")["status"] == "completed"


def test_seeds_stopped_while_they_finish_one_after_another_resume_to_finish_the_rest(workdir, three_seeds, capsys,
                                                                                       monkeypatch):
    run = workdir / "run"
    shutil.copytree(three_seeds, run, symlinks=True)
    reference = results(run)
    # A kill after seed 0 finished and while seeds 1 and 2 had their last checkpoints but not their results
    for seed in (1, 2):
        (run / f"seed_{seed}" / "results.json").unlink()
        (run / f"seed_{seed}" / "checkpoints" / "final.pt").unlink()
    (run / "results.json").unlink()
    seed_0 = (run / "seed_0" / "results.json").read_bytes()
    resumed = run_cli(["train", "resume=run"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming seeds [1, 2] from step 600" in resumed.stdout
    assert results(run)["seeds"] == reference["seeds"] and results(run)["status"] == "completed"
    assert (run / "seed_0" / "results.json").read_bytes() == seed_0   # finished: left as it was
    for seed in (1, 2):
        assert (run / f"seed_{seed}" / "checkpoints" / "final.pt").is_file()
    again = run_in_process(["train", "resume=run"], workdir, capsys, monkeypatch)
    assert again.returncode == 2 and "already at step 600 of total_steps=600" in again.stderr


# (the config's checks as a user meets them: tests/test_errors.py's as-typed case; the seeds one of
# tests/test_new_algorithm.py as typed)
@pytest.mark.parametrize("args, message", [
    (["algo=ddpg", "env=Pendulum-v1", "algo.batch_norm=true", "seeds=[0,1]"], "seeds=[...] with algo.batch_norm=true"),
    (["seeds=[0,0]"], "seeds=[0, 0] repeats a seed"),
    (["seeds=[0,1,2,3]", "algo.buffer_size=300000000", "total_steps=400000000"], "the 4 seeds would need about"),
    (["seeds=[]"], "seeds=[] must be a non-empty list of seeds"),
    (["seeds=[0,1]", "algo.train_freq_unit=episode", "algo.gradient_steps=-1"], "algo.train_freq_unit=episode"),
])
def test_bad_seed_lists_are_one_line_errors(workdir, rlexp, args, message):
    proc = rlexp(["train", *args, "hydra.run.dir=run"], cwd=workdir)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_a_seeds_run_keeps_its_seeds_and_seed_is_refused_beside_them(workdir, three_seeds, capsys, monkeypatch):
    run = workdir / "run"
    shutil.copytree(three_seeds, run, symlinks=True)
    before = snapshot(run)

    def rlexp(args: list[str]):   # (a refused resume as a user types it: tests/test_reliability.py's)
        return run_in_process(args, workdir, capsys, monkeypatch)

    for args, message in [
        (["seeds=[0,1]"], "cannot continue with a different seeds: [0, 1, 2] -> [0, 1]"),
        (["seeds=[2,1,0]"], "cannot continue with a different seeds: [0, 1, 2] -> [2, 1, 0]"),
        (["seeds=[0,1,2,3]"], "cannot continue with a different seeds: [0, 1, 2] -> [0, 1, 2, 3]"),
        (["seeds=null"], "cannot continue with a different seeds: [0, 1, 2] -> None"),
        (["seed=7"], "seed=7 with seeds=[...]"),
    ]:
        proc = rlexp(["train", "resume=run", "total_steps=900", *args])
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    single = rlexp(["train", "resume=run/seed_1", "total_steps=900", "seeds=[1,2]"])
    assert single.returncode == 2 and "different seeds: None -> [1, 2]" in single.stderr, single.stderr
    assert snapshot(run) == before   # every refusal left the run as it was
    new = rlexp([*RUN, "seeds=[0,1]", "seed=5", "hydra.run.dir=other"])
    assert new.returncode == 2 and "seed=5 with seeds=[...]" in new.stderr and not (workdir / "other").exists()
    for command in (["eval", "run"], ["export", "run", "format=torchscript"]):
        proc = rlexp(command)
        assert proc.returncode == 2 and "is a many-seeds run" in proc.stderr and "run/seed_0" in proc.stderr, \
            proc.stderr


def test_a_seed_of_a_batch_in_training_is_locked_against_resuming_it_alone(workdir, capsys, monkeypatch):
    holder = start_cli([*RUN, "total_steps=200000", "seeds=[0,1]", "hydra.run.dir=run"], cwd=workdir)
    try:
        wait_for(workdir / "run" / "seed_1" / "checkpoints" / "step_600.pt", holder)
        proc = run_in_process(["train", "resume=run/seed_1", "total_steps=300000"], workdir, capsys, monkeypatch)
        assert proc.returncode == 2 and f"is in use by process {holder.pid}" in proc.stderr, proc.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel let go of the locks with the process: the seed resumes alone.
    newest = max(int(p.stem[5:]) for p in (workdir / "run" / "seed_1" / "checkpoints").glob("step_*.pt"))
    alone = run_cli(["train", "resume=run/seed_1", f"total_steps={newest + 300}"], cwd=workdir)
    assert alone.returncode == 0, alone.stderr


def test_seeds_whose_episodes_are_cut_by_the_time_limit_at_different_steps_stay_in_step(workdir):
    # PPO bootstraps a truncated episode from V(final observation): a call only the seeds with a truncation make
    proc = train_in_process(["train", "algo=ppo", "env=CartPole-v1", "+env.kwargs.max_episode_steps=15",
                             "total_steps=1024", "env.num_envs=2", "algo.n_steps=64", "algo.batch_size=64",
                             "algo.n_epochs=2", "network.hidden_sizes=[16]", "eval.every=0", "eval.episodes=1",
                             "log.progress=none", "torch_threads=1", "seeds=[0,1,2]", "hydra.run.dir=run"], workdir)
    assert proc.returncode == 0, proc.stderr
    assert results(workdir / "run")["status"] == "completed"

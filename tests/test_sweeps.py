"""Sweeps: per-job threads and GPUs, job directories, the joblib launcher, Optuna, the HParams tab, Ray and
submitit (the last two for real, in slow tests)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from rlexp.analysis.tables import shorten_floats, text_table
from rlexp.commands.configstore import job_dirname
from rlexp.errors import SweepFailed
from rlexp.sweeps.placement import (
    GpuPlacement,
    job_device,
    launcher_threads,
    parallel_jobs,
    torch_threads,
)
from rlexp.sweeps.summary import JobRow, SweepSummary, best_job, format_table
from tests.conftest import (
    as_completed,
    cli_env,
    completed,
    made_once,
    run_cli,
    run_cli_without,
    run_in_process,
    train_in_process,
)

# A job that learns a little in about a second.
TINY_JOB = ["algo=dqn", "env=CartPole-v1", "total_steps=400", "algo.learning_starts=100", "network.hidden_sizes=[16]",
            "eval.every=200", "eval.episodes=2", "checkpoint.every=0", "log.progress=none"]

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
RAY = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
SUBMITIT_LOCAL = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


# --- threads and GPUs per job ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("n_jobs", "cpus", "workers"), [(2, 8, 2), (-1, 8, 8), (-2, 8, 7), (-20, 8, 1), (16, 8, 16)])
def test_parallel_jobs_follows_joblibs_n_jobs(n_jobs, cpus, workers):
    assert parallel_jobs(n_jobs, cpus) == workers


@pytest.mark.parametrize(("launcher", "cpus", "threads"), [
    ({"_target_": BASIC}, 8, None),                                    # jobs one at a time: torch's default
    ({"_target_": JOBLIB, "n_jobs": 2}, 8, 4),                         # the cores shared among the workers
    ({"_target_": JOBLIB, "n_jobs": -1}, 8, 1),
    ({"_target_": JOBLIB, "n_jobs": 16}, 8, 1),                        # never 0
    ({"_target_": RAY, "ray": {"init": {}, "remote": {}}}, 8, 1),      # Ray reserves 1 CPU per task by default
    ({"_target_": RAY, "ray": {"remote": {"num_cpus": 3}}}, 8, 3),
    ({"_target_": SLURM, "cpus_per_task": None}, 64, 1),               # what SLURM grants when unset
    ({"_target_": SLURM, "cpus_per_task": 6}, 64, 6),
    ({"_target_": SUBMITIT_LOCAL, "cpus_per_task": 2}, 8, 2),
])
def test_each_launcher_gives_a_job_its_share_of_the_cores(launcher, cpus, threads):
    assert launcher_threads(launcher, cpus) == threads


def test_an_explicit_torch_threads_wins_over_the_launchers_share():
    assert torch_threads(3, {"_target_": JOBLIB, "n_jobs": 2}, 8) == 3
    assert torch_threads(0, {"_target_": JOBLIB, "n_jobs": 2}, 8) == 4


@pytest.mark.parametrize(("device", "placement", "job", "gpus", "expected"), [
    ("auto", GpuPlacement.spread, 5, 4, "cuda:1"),     # job 5 on GPU 5 mod 4
    ("cuda", GpuPlacement.spread, 2, 4, "cuda:2"),
    ("auto", GpuPlacement.pack, 5, 4, "cuda:0"),
    ("auto", GpuPlacement.spread, None, 4, "cuda:0"),  # a single run
    ("auto", GpuPlacement.spread, 3, 1, "cuda:0"),
    ("auto", GpuPlacement.spread, 3, 0, "auto"),       # no GPU: auto resolves to the CPU
    ("cpu", GpuPlacement.spread, 3, 4, "cpu"),         # explicit choices are kept
    ("cuda:3", GpuPlacement.spread, 0, 4, "cuda:3"),
])
def test_gpu_placement_spreads_or_packs_sweep_jobs(device, placement, job, gpus, expected):
    assert job_device(device, placement, job, gpus) == expected


# --- job directories and the summary ------------------------------------------------------------------------------

def test_job_directory_names_stay_short_flat_and_distinct():
    assert job_dirname("algo.lr=0.001,seed=1") == "algo.lr=0.001,seed=1"
    assert job_dirname("env.id=ALE/Pong-v5,seed=1") == "env.id=ALE_Pong-v5,seed=1"
    long_a, long_b = "algo.actor_lr=0.000123456789," * 20 + "seed=0", "algo.actor_lr=0.000123456789," * 20 + "seed=1"
    assert len(job_dirname(long_a)) == 120 and job_dirname(long_a) != job_dirname(long_b)


def test_the_printed_table_shortens_floats_and_names_the_best_job():
    assert shorten_floats("algo.lr=0.0006466422717414558 seed=1 env=Pendulum-v1") == \
        "algo.lr=0.0006466 seed=1 env=Pendulum-v1"
    rows = [JobRow(0, "a", "completed", -5.0, 1.0, "", "d0"), JobRow(1, "b", "failed", None, 1.0, "x", "d1"),
            JobRow(2, "c", "completed", 3.0, 1.0, "", "d2")]
    assert best_job(rows).job == 2
    assert best_job(rows[1:2]) is None
    assert format_table(rows).splitlines()[:3] == [
        "job  overrides  status     eval return  wall s",
        "---  ---------  ---------  -----------  ------",
        "0    a          completed  -5.00        1.0"]


def fake_job(sweep: Path, num: int, overrides: list[str], results: dict | None) -> None:
    """A job directory as Hydra and `rlexp train` leave it."""
    job = sweep / f"{num}_{','.join(overrides)}"
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": {"job": {"num": num}, "overrides": {"task": overrides}}}),
                   job / ".hydra" / "hydra.yaml")
    if results is not None:
        (job / "results.json").write_text(json.dumps(results))


def test_the_summary_of_a_sweep_with_failed_jobs_is_written_then_raises_sweep_failed(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    fake_job(sweep, 0, ["env=CartPole-v1", "seed=0"], {"status": "completed", "eval_return_mean": 10.0,
                                                       "wall_time_s": 1.5})
    fake_job(sweep, 1, ["env=CartPole-v1", "seed=1"], {"status": "failed", "error": "algo.gamma=2.0 is outside"})
    fake_job(sweep, 2, ["env=CartPole-v1", "seed=2"], None)  # killed before it wrote anything
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    with pytest.raises(SweepFailed,
                       match=r"2 of 3 jobs did not complete \(job 1: failed, job 2: no result\)") as failed:
        SweepSummary().on_multirun_end(config)
    assert not isinstance(failed.value, Exception) and failed.value.exit_code == 1  # Hydra must not swallow it
    rows = list(csv.DictReader((sweep / "summary.csv").open()))  # written before raising
    assert [(r["job"], r["overrides"], r["status"]) for r in rows] == [
        ("0", "seed=0", "completed"), ("1", "seed=1", "failed"), ("2", "seed=2", "no result")]
    assert "job 1 failed: algo.gamma=2.0 is outside" in capsys.readouterr().out
    (sweep / "1_env=CartPole-v1,seed=1" / "results.json").write_text(json.dumps({"status": "completed"}))
    (sweep / "2_env=CartPole-v1,seed=2" / "results.json").write_text(json.dumps({"status": "completed"}))
    SweepSummary().on_multirun_end(config)  # every job completed: no exception


def test_text_table_aligns_columns_without_trailing_spaces():
    assert text_table(("a", "bb"), [("xyz", ""), ("1", "22")]) == ["a    bb", "---  --", "xyz", "1    22"]
    assert text_table(("job", "status"), []) == ["job  status", "---  ------"]


def test_gpu_placement_rejects_unknown_choices(workdir, capsys, monkeypatch):
    proc = run_in_process(["train", "gpu_placement=everywhere"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and "expected one of [spread, pack]" in proc.stderr


def test_multirun_with_cfg_is_one_line(workdir, capsys, monkeypatch):
    proc = run_in_process(["train", "--multirun", "--cfg", "hydra", "seed=0,1"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "drop --multirun" in proc.stderr


PLUGINS = {   # a Hydra plugin (or the package a sweep needs), a sweep that needs it, and what the error says
    "hydra_plugins.hydra_joblib_launcher": (["hydra/launcher=joblib", "seed=0,1"],
                                            'comes with a Hydra plugin that is not installed: pip install '
                                            '"rlexp[sweep]"'),
    "hydra_plugins.hydra_ray_launcher": (["hydra/launcher=ray", "seed=0,1"],
                                         'comes with a Hydra plugin that is not installed: pip install "rlexp[ray]"'),
    "hydra_plugins.hydra_submitit_launcher": (["hydra/launcher=submitit_slurm", "seed=0,1"],
                                              'comes with a Hydra plugin that is not installed: pip install '
                                              '"rlexp[slurm]"'),
    "optuna": (["hparams_search=td3_pendulum"],
               'hparams_search needs Optuna, which is not installed: pip install "rlexp[sweep]"'),
}


@pytest.fixture(scope="module")
def without_plugins(tmp_path_factory) -> tuple[dict[str, subprocess.CompletedProcess], Path]:
    """Each sweep of PLUGINS in an interpreter without any of the plugins, as on a machine without them (one
    interpreter for the four; each needs only its own plugin), and the directory they ran in."""
    def make(workdir: Path) -> list[dict]:
        commands = [["train", "--multirun", *args] for args, _ in PLUGINS.values()]
        return [completed(proc) for proc in run_cli_without(list(PLUGINS), commands, workdir)]

    workdir, procs = made_once(tmp_path_factory, "sweeps-without-plugins", make)
    return dict(zip(PLUGINS, map(as_completed, procs), strict=True)), workdir


@pytest.mark.parametrize("plugin", list(PLUGINS))
def test_a_launcher_or_sweeper_whose_extra_is_missing_says_which_pip_install_fixes_it(without_plugins, plugin):
    procs, workdir = without_plugins
    proc, expected = procs[plugin], PLUGINS[plugin][1]
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert expected in proc.stderr
    assert not (workdir / "multirun").exists() and not (workdir / "outputs").exists()


# --- the joblib launcher, for real --------------------------------------------------------------------------------

# The joblib launcher (jobs two at a time, a share of the cores each as torch threads, the summary): tests/
# test_on_policy_cli.py's sweep over PPO and A2C.


# --- a sweep that died continues ------------------------------------------------------------------------------

KILLED_SWEEP = ["train", "--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "algo=dqn",
                "env=CartPole-v1", "total_steps=1500", "algo.learning_starts=200", "network.hidden_sizes=[32]",
                "log.progress=none", "eval.episodes=1", "torch_threads=1", "checkpoint.every=250", "seed=0,1,2",
                "hydra.sweep.dir=sweep"]
CONTINUED = [arg for arg in KILLED_SWEEP if arg not in ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")]


def test_a_killed_sweep_continues_with_its_own_command(workdir):
    """SIGKILL to a joblib sweep (its process group: the sweep and its workers) once a job has a checkpoint; the
    same command again: the killed jobs resume exactly (their final agents are the uninterrupted runs'), the one that
    never started starts, the summary is whole; a third time, every job is kept as it is."""
    from tests.conftest import start_cli
    from tests.test_resume import final_agent, same_parameters

    sweep = workdir / "sweep"
    proc = start_cli(KILLED_SWEEP, workdir, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(sweep.glob("*/checkpoints/step_500.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before a job's checkpoint"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    resumable = sorted(d.name for d in sweep.iterdir() if list(d.glob("checkpoints/step_*.pt"))
                       and not (d / "results.json").exists())
    assert resumable   # (killed mid-run)

    # (continued with the basic launcher: a launcher's settings may change; the jobs run in the sweep's process)
    again = run_cli(CONTINUED, cwd=workdir)
    assert again.returncode == 0, again.stderr
    with (sweep / "summary.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["status"] for row in rows] == ["completed"] * 3
    for name in resumable:
        seed = json.loads((sweep / name / "results.json").read_text())["seed"]
        reference = train_in_process([*[a for a in CONTINUED if a != "--multirun"
                                        and not a.startswith(("seed=", "hydra.sweep.dir"))],
                                      f"seed={seed}", f"hydra.run.dir=reference_{seed}"], workdir)
        assert reference.returncode == 0, reference.stderr
        assert same_parameters(final_agent(workdir / f"reference_{seed}"), final_agent(sweep / name)), name
        assert json.loads((sweep / name / "results.json").read_text())["resumed_from_step"] >= 250
    before = {d.name: (d / "results.json").read_text() for d in sweep.iterdir() if d.is_dir()}
    third = run_cli(CONTINUED, cwd=workdir)
    assert third.returncode == 0, third.stderr
    assert (third.stdout + third.stderr).count("finished by an earlier run of this sweep; kept as it is") == 3
    assert {d.name: (d / "results.json").read_text() for d in sweep.iterdir() if d.is_dir()} == before


def test_a_job_is_found_as_the_earlier_run_of_its_sweep_left_it(tmp_path):
    from rlexp.sweeps.continuation import Found, clear_attempt, found_in

    job = tmp_path / "0_seed=0"
    (job / ".hydra").mkdir(parents=True)
    assert found_in(job) is Found.NEW
    (job / "events.out.tfevents.1.host").write_text("x")
    (job / "metrics.csv").write_text("step,tag,value,wall_time\n")
    (job / "seed_3" / "checkpoints").mkdir(parents=True)
    (job / "seed_3" / "checkpoints" / "best.pt").write_text("x")   # (not resumable: no step_*.pt)
    assert found_in(job) is Found.RESTART
    clear_attempt(job)
    assert sorted(p.name for p in job.iterdir()) == [".hydra"] and found_in(job) is Found.NEW
    (job / "seed_3" / "checkpoints").mkdir(parents=True)
    (job / "seed_3" / "checkpoints" / "step_500.pt").write_text("x")
    assert found_in(job) is Found.RESUMABLE
    (job / "results.json").write_text('{"status": "completed"}')
    assert found_in(job) is Found.FINISHED


# --- launcher configs that need a cluster to run: they compose --------------------------------------------------

def test_the_slurm_launcher_composes_with_cluster_settings(workdir):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    proc = run_cli(["train", "--cfg", "hydra", "hydra/launcher=submitit_slurm",
                    "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1", "hydra.launcher.cpus_per_task=4",
                    "hydra.launcher.timeout_min=120"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    launcher = yaml.safe_load(proc.stdout)["hydra"]["launcher"]
    assert launcher["_target_"] == SLURM and launcher["partition"] == "gpu" and launcher["cpus_per_task"] == 4


# --- Ray and submitit, for real (slow) ---------------------------------------------------------------------------

@pytest.mark.slow
def test_ray_launcher_runs_the_sweep_on_a_local_ray_cluster(workdir):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason='needs pip install "rlexp[ray]"')
    proc = run_cli(["train", "--multirun", "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
                    *TINY_JOB, "seed=0,1", "hydra.sweep.dir=sweep"], cwd=workdir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Ray Launcher is launching 2 jobs" in proc.stdout + proc.stderr
    assert (proc.stdout + proc.stderr).count("1 torch threads") == 2
    rows = list(csv.DictReader((workdir / "sweep" / "summary.csv").open()))
    assert [(r["overrides"], r["status"]) for r in rows] == [("seed=0", "completed"), ("seed=1", "completed")]
    assert all((workdir / r["run_dir"] / "checkpoints" / "final.pt").is_file() for r in rows)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_cli() -> str:
    """The `ray` command of this interpreter's environment (where rlexp[ray] put it)."""
    beside = Path(sys.executable).parent / "ray"
    found = str(beside) if beside.is_file() else shutil.which("ray")
    if found is None:
        pytest.skip('no ray command: pip install "rlexp[ray]"')
    return found


def processes_of(pgids: list[int], temp_dir: str) -> list[int]:
    """The live processes in those process groups, or whose command line names `temp_dir` (Ray's own, for this
    cluster alone: its directory is new and random)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) in pgids or temp_dir in (entry / "cmdline").read_text(errors="replace"):
                found.append(int(entry.name))
        except OSError:   # (gone meanwhile)
            pass
    return [pid for pid in found if pid != os.getpid()]


@pytest.fixture
def two_node_ray_cluster(monkeypatch):
    """A Ray cluster of two nodes on this machine, as on two (`ray start --head`, then `ray start --address=...`
    with a resource of its own), 1 CPU each. Yields its address, the two node ids and the second node's. Torn
    down by killing its own processes (each `ray start` in a process group of its own; what Ray starts stays in it),
    not with `ray stop`, which stops every Ray process on the machine, another test's cluster included."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason='needs pip install "rlexp[ray]"')
    ray = ray_cli()
    # Ray 2.60 turns token authentication on for a node or driver that finds ~/.ray/auth_token (which a local
    # ray.init, such as the test above, writes): this cluster's nodes and the sweep's driver all without it.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    temp_dir = tempfile.mkdtemp(prefix="rl-", dir="/tmp")   # Ray's socket paths must stay under 107 characters
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus=1", "--object-store-memory=78643200", "--disable-usage-stats"]
    starts = [[ray, "start", "--head", f"--port={port}", f"--temp-dir={temp_dir}", "--include-dashboard=false",
               f"--ray-client-server-port={free_port()}", *common],
              [ray, "start", f"--address={address}", "--resources={\"second\": 1}", *common]]
    pgids: list[int] = []
    try:
        for command in starts:   # (in the temp dir: a relative path a job names would land there, not in the test's)
            proc = subprocess.Popen(command, cwd=temp_dir, env=cli_env(), start_new_session=True, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            pgids.append(proc.pid)
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, out[-3000:]
        nodes_script = ("import json, ray; ray.init(address=%r, logging_level='ERROR'); print(json.dumps("
                        "[(n['NodeID'], 'second' in n['Resources']) for n in ray.nodes() if n['Alive']]))" % address)
        deadline = time.monotonic() + 60
        while True:   # until the second node has registered with the head
            proc = subprocess.run([sys.executable, "-c", nodes_script], env=cli_env(), capture_output=True,
                                  text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr[-3000:]
            nodes = json.loads(proc.stdout.strip().splitlines()[-1])
            if len(nodes) == 2 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert len(nodes) == 2, nodes
        yield address, {node for node, _ in nodes}, next(node for node, second in nodes if second)
    finally:
        for pgid in pgids:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while (left := processes_of(pgids, temp_dir)) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"Ray processes left running: {left}"


@pytest.mark.slow
def test_a_sweep_runs_on_both_nodes_of_a_two_node_ray_cluster(workdir, two_node_ray_cluster):
    """A sweep through Hydra's Ray launcher on a running cluster of two nodes (`hydra.launcher.ray.init.address`),
    each task reserving 1 CPU of a node's 1: the four jobs spread over both nodes, each writing the id of the node
    it ran on (tests.toy_callbacks.RecordRayNode). The sweep directory is relative, and the nodes were started in
    another directory: rlexp makes it absolute, or each Ray worker would take it in its own working directory (the
    jobs' runs there, none found by the sweep). `object_store_memory=null` undoes the launcher's default
    (hydra-ray-launcher 1.2.2 sets it for ray.init, which Ray refuses when it connects to a running cluster)."""
    address, node_ids, second = two_node_ray_cluster
    sweep = workdir / "sweep"
    proc = run_cli(["train", "--multirun", "hydra/launcher=ray", f"hydra.launcher.ray.init.address={address}",
                    "+hydra.launcher.ray.init.object_store_memory=null", "+hydra.launcher.ray.remote.num_cpus=1",
                    *TINY_JOB, "callbacks=[{_target_: tests.toy_callbacks.RecordRayNode}]", "seed=0,1,2,3",
                    "hydra.sweep.dir=sweep"], cwd=workdir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Ray Launcher is launching 4 jobs" in proc.stdout + proc.stderr
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(r["overrides"], r["status"]) for r in rows] == [(f"seed={s}", "completed") for s in range(4)]
    ran_on = [(workdir / r["run_dir"] / "ray_node.txt").read_text() for r in rows]
    assert set(ran_on) == node_ids and second in ran_on, ran_on

    # A search on the same cluster: two trials at a time, each seed a job of its own, the jobs on both nodes
    # reporting to the study's SQLite storage in the sweep's directory.
    import optuna

    from tests.test_search import SEARCH
    search = run_cli([*SEARCH, "hydra/launcher=ray", f"hydra.launcher.ray.init.address={address}",
                      "+hydra.launcher.ray.init.object_store_memory=null", "+hydra.launcher.ray.remote.num_cpus=1",
                      "callbacks=[{_target_: tests.toy_callbacks.RecordRayNode}]", "hydra.sweeper.n_trials=2",
                      "hydra.sweeper.n_jobs=2", "hydra.sweeper.seeds_as=processes", "hydra.sweep.dir=search"],
                     cwd=workdir, timeout=600)
    assert search.returncode == 0, search.stderr[-3000:]
    study = optuna.load_study(study_name="dqn_cartpole", storage=f"sqlite:///{workdir / 'search' / 'optuna.db'}")
    assert [sorted(t.intermediate_values) for t in study.trials] == [[200, 400, 600]] * 2
    assert {p.read_text() for p in (workdir / "search").glob("trial_*/ray_node.txt")} == node_ids


@pytest.mark.slow
def test_submitit_launcher_runs_the_sweep_with_its_local_executor(workdir):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason='needs pip install "rlexp[slurm]"')
    proc = run_cli(["train", "--multirun", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                    "hydra.launcher.cpus_per_task=1", *TINY_JOB, "seed=0,1", "hydra.sweep.dir=sweep"],
                   cwd=workdir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((workdir / "sweep" / "summary.csv").open()))
    assert [(r["overrides"], r["status"]) for r in rows] == [("seed=0", "completed"), ("seed=1", "completed")]
    assert all(json.loads((workdir / r["run_dir"] / "results.json").read_text())["total_steps"] == 400 for r in rows)
    assert list((workdir / "sweep" / ".submitit").iterdir())  # submitit's own job folders: it really ran them


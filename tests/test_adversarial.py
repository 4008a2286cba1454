"""What issue 35's own adversarial pass found beyond its families (/work/notes/adversarial_35.md lists every case):
stdout closed or on a full disk, run directories edited by hand, and command lines a shell builds from variables."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlexp.commands import main
from rlexp.commands.streams import GuardedStdout
from rlexp.errors import ConfigError, OutputLost
from rlexp.io.checkpoints import FORMAT, CheckpointManager, save_checkpoint
from rlexp.io.results import read_results, results_status
from rlexp.io.writable import check_writable
from tests.conftest import cli_env, one_line, run_in_process, start_cli, wait_for
from tests.test_eval import finished_run_fixture  # noqa: F401  (the session's finished TD3 run: finished_run)

TINY_DQN = ["algo=dqn", "env=CartPole-v1", "network.hidden_sizes=[8]", "log.progress=lines", "torch_threads=1",
            "eval.every=0", "eval.episodes=1", "total_steps=200", "algo.learning_starts=100"]


def test_stdout_that_cannot_be_written_is_reported_once_then_dropped():
    with open("/dev/full", "w") as full:
        guarded = GuardedStdout(full)
        with pytest.raises(OutputLost, match="could not write to stdout: No space left on device"):
            print("x" * 10000, file=guarded, flush=True)
        print("more", file=guarded, flush=True)   # reported once: later output goes nowhere
    with open(os.devnull, "w") as null:   # what a library may read of sys.stdout is the stream's
        assert (GuardedStdout(null).buffer, GuardedStdout(null).name) == (null.buffer, os.devnull)
    closed = GuardedStdout(None)   # `>&-`
    closed.flush()   # nothing written, nothing to report
    with pytest.raises(OutputLost, match="stdout is closed"):
        closed.write("x")


@pytest.mark.parametrize("args, reason", [
    (["eval", "run", "episodes=1"], " (its report only: what it writes to files is written)"),
    (["--help"], ""),
])
def test_eval_and_help_on_a_full_stdout_are_one_line_and_exit_1(finished_run, capsys, monkeypatch, args, reason):
    monkeypatch.chdir(finished_run)
    capsys.readouterr()
    with open("/dev/full", "w") as full:
        monkeypatch.setattr(sys, "stdout", full)
        assert main(args) == 1
    command = "rlexp eval" if args[0] == "eval" else "rlexp"
    assert capsys.readouterr().err == f"{command}: error: could not write to stdout: No space left on device{reason}\n"


def test_train_with_stdout_on_a_full_disk_warns_once_and_completes(tmp_path):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "rlexp", "train", *TINY_DQN, "hydra.run.dir=run"], cwd=tmp_path,
                              stdout=full, stderr=subprocess.PIPE, text=True, env=cli_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "rlexp train: warning: could not write to stdout: No space left on device; the " \
                                  "console log stops here, the run goes on (train.log has every line)"
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "completed"
    assert "done: eval return" in (tmp_path / "run" / "train.log").read_text()



def test_checkpoints_named_by_hand_are_never_resumed_from(tmp_path):
    """`step_abc.pt` was a ValueError traceback on resume; a copy of step_300.pt named step_999999.pt was resumed
    from (at step 300) and kept as the newest, so every later resume rewound to step 300."""
    manager = CheckpointManager(tmp_path, keep=5)
    for step in (100, 300):
        save_checkpoint({"format": FORMAT, "agent": {}, "step": step}, tmp_path / f"step_{step}.pt")
    for name in ("step_999999.pt", "step_abc.pt", "step_.pt", "step_300.pt.bak", "step_-5.pt"):
        shutil.copy(tmp_path / "step_300.pt", tmp_path / name)
    assert manager.step_numbers() == [100, 300, 999999]
    bundle, path, unreadable = manager.load_latest()
    assert (bundle["step"], path.name) == (300, "step_300.pt")
    assert unreadable == [(tmp_path / "step_999999.pt", f"checkpoint {tmp_path}/step_999999.pt holds step 300, not the "
                                                        f"step its name says (renamed or copied by hand?)")]


@pytest.mark.parametrize("text", ["[1, 2]", '"completed"', "{garbage", '{"status": 5}', ""])
def test_a_results_json_that_is_not_an_object_is_no_status(tmp_path, text):
    """A results.json that is a list was an AttributeError traceback on resume (and in a sweep's summary)."""
    (tmp_path / "results.json").write_text(text)
    assert results_status(tmp_path) is None
    assert read_results(tmp_path) in (None, {"status": 5})


@pytest.mark.parametrize("override, instead", [
    ("resume=", "start a new run with the default settings: give resume=<run_dir> (resume=null for a new run)"),
    ("resume=''", "start a new run with the default settings"),
    ("hydra.run.dir=", "write the run into the current directory: give hydra.run.dir=<directory>"),
])
def test_an_empty_directory_key_is_refused(tmp_path, capsys, monkeypatch, override, instead):
    """`rlexp train resume=$RUN` with RUN unset trained 50,000 default steps in a new run; `hydra.run.dir=$OUT`
    wrote the run into the current directory."""
    proc = run_in_process(["train", override, "total_steps=300"], tmp_path, capsys, monkeypatch)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"rlexp train: error: {override} is empty (a shell variable that is not set?); "
                                  f"it would {instead}") and proc.stderr.count("\n") == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("override, message", [
    ("hydra.run.dir=ränn_✓", "cannot parse the override 'hydra.run.dir=ränn_✓': Hydra's override grammar does not "
     "accept 'ä' in it (unquoted values take ASCII letters, digits and a few symbols); quote the value: "
     "'hydra.run.dir=\"ränn_✓\"'"),
    ("env.id=Cart\nPole-v1", "cannot parse the override 'env.id=Cart\\nPole-v1': Hydra's override grammar does not "
     "accept '\\n' in it (unquoted values take ASCII letters, digits and a few symbols)"),
    ("algo.lr=1e-3)", "cannot parse the override 'algo.lr=1e-3)': extraneous input ')' expecting <EOF> (Hydra's "
     "override grammar: https://hydra.cc/docs/advanced/override_grammar/basic)"),
])
def test_an_override_hydra_cannot_parse_says_where_and_how_to_quote(tmp_path, capsys, monkeypatch, override, message):
    """Only the first of Hydra's three lines was shown: `LexerNoViableAltException: hydra.run.dir=ränn_✓`."""
    proc = run_in_process(["train", override], tmp_path, capsys, monkeypatch)
    assert (proc.returncode, proc.stderr) == (2, f"rlexp train: error: {message}\n")


def test_a_matplotlib_backend_that_does_not_exist_is_one_line(finished_run, tmp_path):
    """MPLBACKEND=nonsense was matplotlib's ValueError traceback (its import reads the variable: a subprocess)."""
    proc = subprocess.run([sys.executable, "-m", "rlexp", "plot", str(finished_run / "run"), f"out={tmp_path}/p.png"],
                          capture_output=True, text=True, env={**cli_env(), "MPLBACKEND": "nonsense"}, timeout=120)
    assert (proc.returncode, proc.stderr) == (2, "rlexp plot: error: MPLBACKEND='nonsense' is not a matplotlib "
                                                 "backend: unset it (rlexp draws its figures without one) or name "
                                                 "one, e.g. MPLBACKEND=agg\n")
    assert list(tmp_path.iterdir()) == []


def test_plot_of_a_run_holding_a_directory_named_as_an_event_file(finished_run, tmp_path, capsys, monkeypatch):
    """TensorBoard's reader opens every events.out.tfevents.* name: a directory so named was an IsADirectoryError
    traceback."""
    shutil.copytree(finished_run / "run", tmp_path / "run")
    (tmp_path / "run" / "events.out.tfevents.dir").mkdir()
    proc = run_in_process(["plot", "run"], tmp_path, capsys, monkeypatch)
    assert (proc.returncode, proc.stderr) == (1, "rlexp plot: error: cannot read the TensorBoard events of run: "
                                                 "run/events.out.tfevents.dir: Is a directory\n")
    assert not (tmp_path / "run" / "plot.png").exists()


def test_a_sweep_into_a_directory_holding_a_sweeps_runs_is_refused(tmp_path, capsys, monkeypatch):
    """`--multirun ... hydra.sweep.dir=<an old sweep>` trained each job over the old job of the same number and
    overrides (the same directory name): its checkpoints and results.json overwritten without a word."""
    job = tmp_path / "sweep" / "0_seed=0"
    (job / ".hydra").mkdir(parents=True)
    (job / "checkpoints").mkdir()
    (job / "results.json").write_text('{"status": "completed"}')
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = run_in_process(["train", "--multirun", "seed=0,1", "hydra.sweep.dir=sweep"], tmp_path, capsys, monkeypatch)
    assert proc.returncode == 2
    assert proc.stderr == "rlexp train: error: hydra.sweep.dir=sweep already holds the runs of another sweep " \
                          "(0_seed=0), which this one's jobs would train over; choose a new directory (a job " \
                          "continues alone: rlexp train resume=sweep/<job>)\n"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    # a sweep whose own command is known (Hydra's multirun.yaml): that command continues it (tests/test_sweeps.py)
    (tmp_path / "sweep" / "multirun.yaml").write_text("hydra:\n  overrides:\n    task:\n    - seed=0,1\n"
                                                      "    - algo=td3\n")
    proc = run_in_process(["train", "--multirun", "seed=0,1", "hydra.sweep.dir=sweep"], tmp_path, capsys, monkeypatch)
    assert proc.returncode == 2 and "its own command continues it (rlexp train --multirun seed=0,1 algo=td3 " \
                                    "hydra.sweep.dir=sweep), or choose a new directory" in one_line(proc)


def test_eval_into_a_results_file_that_is_a_directory_is_refused_before_playing(finished_run, tmp_path, capsys,
                                                                              monkeypatch):
    """eval/final.json a directory: every episode was played, then `could not write ...: Is a directory`."""
    shutil.copytree(finished_run / "run", tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    (tmp_path / "run" / "eval" / "final.json").mkdir(parents=True)
    proc = run_in_process(["eval", "run", "episodes=1000000"], tmp_path, capsys, monkeypatch)
    assert (proc.returncode, proc.stderr) == (2, "rlexp eval: error: cannot write the evaluation's results to "
                                                 "run/eval/final.json: it is a directory; write them elsewhere with "
                                                 "out=DIR\n")


def test_a_comma_list_without_multirun_says_each_reading(tmp_path, capsys, monkeypatch):
    """Hydra's three ways to read `seed=0,1` were cut to `Ambiguous value for argument 'seed=0,1'`."""
    proc = run_in_process(["train", "seed=0,1"], tmp_path, capsys, monkeypatch)
    assert (proc.returncode, proc.stderr) == (2, "rlexp train: error: Ambiguous value for argument 'seed=0,1': a list "
                                                 "is key=[a,b], a string key='a,b', and a sweep over the values needs "
                                                 "--multirun\n")


def test_a_joblib_worker_killed_by_the_os_ends_the_sweep_in_one_line_with_its_summary(tmp_path):
    """SIGKILL to a joblib worker (the OOM killer's) was joblib's TerminatedWorkerError traceback, with no summary."""
    proc = start_cli(["train", "--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY_DQN[:-2],
                      "total_steps=200000", "algo.learning_starts=100", "checkpoint.every=100", "seed=0,1",
                      "hydra.sweep.dir=sweep"], tmp_path, start_new_session=True)
    for job in (0, 1):   # both jobs running (on a busy machine the second may start later than the first's checkpoint)
        wait_for(next_path(tmp_path / "sweep", f"{job}_*/checkpoints/step_100.pt", proc), proc)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "LokyProcess"], capture_output=True, text=True)
    os.kill(int(workers.stdout.split()[0]), signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert stderr.startswith("rlexp train: error: a worker process of the joblib launcher was killed while it ran a "
                             "job (by the OS's out-of-memory killer?), and joblib stopped the sweep's other jobs with "
                             "it; 2 of 2 jobs did not complete (job 0: no result, job 1: no result)") \
        and stderr.count("\n") == 1, stderr
    assert (tmp_path / "sweep" / "summary.csv").read_text().count("no result") == 2
    deadline = time.monotonic() + 15   # (the other worker, killed by joblib, may still be exiting)
    while (left := subprocess.run(["pgrep", "-a", "-g", str(proc.pid)], capture_output=True, text=True).stdout):
        assert time.monotonic() < deadline, f"processes left behind: {left}"
        time.sleep(0.2)


def next_path(directory: Path, pattern: str, proc: subprocess.Popen) -> Path:
    """The first path `pattern` matches under `directory`, once one does (a sweep's job directory has a hashed name)."""
    deadline = time.monotonic() + 120
    while not (found := sorted(directory.glob(pattern))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.2)
    return found[0]


def test_a_resume_that_cannot_write_the_runs_log_is_refused_with_the_run_as_it_was(finished_run, tmp_path, capsys,
                                                                                   monkeypatch):
    """train.log a directory: the resume was accepted, then its first log line failed with `cannot write to ...;
    choose another directory` (exit 2) and a failed results.json replaced the finished run's."""
    shutil.copytree(finished_run / "run", tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    (tmp_path / "run" / "train.log").unlink()
    (tmp_path / "run" / "train.log").mkdir()
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    proc = run_in_process(["train", "resume=run", "total_steps=400"], tmp_path, capsys, monkeypatch)
    assert proc.returncode == 2
    assert proc.stderr == f"rlexp train: error: resume={tmp_path}/run: cannot write the run's log " \
                          f"{tmp_path}/run/train.log: Is a directory; the run is as it was\n"
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("alter, found", [
    (lambda bundle: bundle.pop("context"), "has no context"),
    (lambda bundle: bundle.update(rng=[1]), "holds rng as a list"),
    (lambda bundle: bundle["context"].pop("metrics"), "has no context.metrics"),
])
def test_a_resume_from_a_checkpoint_cut_down_by_hand_is_refused(finished_run, tmp_path, capsys, monkeypatch, alter,
                                                                found):
    """A checkpoint without `context` began the resume and ended in a KeyError traceback."""
    import torch

    shutil.copytree(finished_run / "run", tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    newest = CheckpointManager(tmp_path / "run" / "checkpoints", 1).latest()
    assert newest is not None
    bundle = torch.load(newest, weights_only=True)
    alter(bundle)
    torch.save(bundle, newest)
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    proc = run_in_process(["train", "resume=run", "total_steps=400"], tmp_path, capsys, monkeypatch)
    assert proc.returncode == 2
    assert proc.stderr == f"rlexp train: error: resume={tmp_path}/run: its newest checkpoint {found}, which a resume " \
                          f"reads: the file was altered, or not written by this rlexp; resume from an earlier " \
                          f"checkpoint (move this one away), or evaluate it: rlexp eval\n"
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("target", ["/dev/zero", "nowhere"])
def test_a_runs_checkpoint_that_is_not_a_regular_file_is_named(finished_run, tmp_path, capsys, monkeypatch, target):
    """final.pt a link to /dev/zero (or to nothing) was `run holds no checkpoints/final.pt`."""
    shutil.copytree(finished_run / "run", tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    (tmp_path / "run" / "checkpoints" / "final.pt").unlink()
    (tmp_path / "run" / "checkpoints" / "final.pt").symlink_to(target)
    proc = run_in_process(["eval", "run"], tmp_path, capsys, monkeypatch)
    assert (proc.returncode, proc.stderr) == (2, "rlexp eval: error: run/checkpoints/final.pt is not a regular file (a "
                                                 "directory, a device, a pipe, or a link to one or to nothing): a "
                                                 "checkpoint is a file rlexp wrote\n")


def test_a_new_run_inside_another_runs_directory_is_refused(finished_run, tmp_path, capsys, monkeypatch):
    """`hydra.run.dir=<run>/checkpoints` trained a new run among the old run's checkpoints (its .hydra/, results.json
    and checkpoints/ nested there)."""
    shutil.copytree(finished_run / "run", tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = run_in_process(["train", "total_steps=300", "hydra.run.dir=run/checkpoints"], tmp_path, capsys, monkeypatch)
    assert (proc.returncode, proc.stderr) == (2, f"rlexp train: error: hydra.run.dir=run/checkpoints is inside the run "
                                                 f"{tmp_path}/run; choose a directory outside it\n")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_sweep_over_no_value_is_refused(tmp_path, capsys, monkeypatch):
    """`--multirun seed=range(0,0)` ran no job and ended with an empty table, exit 0."""
    proc = run_in_process(["train", "--multirun", "seed=range(0,0)", "hydra.sweep.dir=sweep"], tmp_path, capsys,
                          monkeypatch)
    assert (proc.returncode, proc.stderr) == (2, "rlexp train: error: seed=range(0,0) sweeps over no value, so the "
                                                 "sweep would run no job; give it at least one\n")
    assert list(tmp_path.iterdir()) == []


def test_an_output_through_a_link_that_leads_nowhere_is_named(tmp_path):
    """`rlexp export ... out=<a symlink loop>` was `cannot write the export to loop: File exists`."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    for out in (tmp_path / "loop", tmp_path / "gone" / "x"):
        with pytest.raises(ConfigError) as refused:
            check_writable(out, "the export")
        link = out if out.name == "loop" else out.parent
        assert str(refused.value) == f"cannot write the export to {out}: {link} is a link that leads nowhere (a " \
                                     f"loop, or its target is gone)"


@pytest.mark.parametrize("damage", [lambda data: data[:100], lambda data: b"", lambda data: bytes(len(data))])
def test_plot_of_event_files_that_hold_nothing_readable_says_so(finished_run, tmp_path, capsys, monkeypatch, damage):
    """A truncated, emptied or zeroed events file was `no run logged metric=...; the runs logged: no scalars at all`
    (TensorBoard's reader skips what it cannot read without a word)."""
    shutil.copytree(finished_run / "run", tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    for events in (tmp_path / "run").glob("events.out.tfevents.*"):
        events.write_bytes(damage(events.read_bytes()))
    proc = run_in_process(["plot", "run"], tmp_path, capsys, monkeypatch)
    assert (proc.returncode, proc.stderr) == (2, "rlexp plot: error: the TensorBoard event files of run hold no "
                                                 "readable scalar (empty, truncated or corrupt, or a run that has not "
                                                 "logged yet)\n")


@pytest.mark.parametrize("args, message", [
    (["resume=run", "total_steps=400", "hydra.run.dir=other"],
     "resume=run with hydra.run.dir=other: a resume continues the run in its own directory; drop hydra.run.dir= (to "
     "branch the run, copy its directory and resume the copy)"),
    (["--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0", "seed=0,1", "hydra.sweep.dir=sweep"],
     "hydra.launcher.n_jobs=0: the joblib launcher runs a positive number of jobs at once (or -1: one per core)"),
])
def test_a_setting_that_would_be_ignored_or_crash_the_launcher_is_refused(finished_run, tmp_path, capsys, monkeypatch,
                                                                          args, message):
    """`resume=run hydra.run.dir=other` resumed in run/, other/ silently ignored; `hydra.launcher.n_jobs=0` was
    joblib's ValueError traceback after the sweep's directory was made."""
    shutil.copytree(finished_run / "run", tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = run_in_process(["train", *args], tmp_path, capsys, monkeypatch)
    assert (proc.returncode, proc.stderr) == (2, f"rlexp train: error: {message}\n")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_the_memory_check_closes_what_it_reads():
    """PYTHONWARNINGS=error printed `Exception ignored ... ResourceWarning: unclosed file /proc/meminfo` for every
    command that checks memory."""
    import gc
    import warnings

    from rlexp.runners.memory import available_host_bytes

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert available_host_bytes() > 0
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []

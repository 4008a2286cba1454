"""Shared fixtures: Hydra's compose API over conf/, and the CLI run as a user types it."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import inspect
import io
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from rlexp.commands.configstore import compose_config  # noqa: F401  (the tests compose with it)
from tests import forkserver

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"

# One torch thread per test process, and per CLI it starts unless the test sets torch_threads: pytest-xdist runs a
# worker per core already, and torch's default of a thread per core in each oversubscribes the cores (OpenMP
# threads spinning while they wait for one another made a TD3 test loop 5x slower with the other core busy).
torch.set_num_threads(1)

# Tiny budgets that still exercise updates, evaluation and checkpoints.
TINY = ["eval.episodes=2", "eval.every=200", "checkpoint.every=200", "log.every=50", "log.progress=lines",
        "torch_threads=1"]


def algo_config(schema: type, values: dict) -> Any:
    """An algorithm's typed config (what a builder takes) from some of its keys, as the unit tests build agents: the
    keys the schema has (nested sections from dicts); a key the builder does not read may stay unset."""
    hints = typing.get_type_hints(schema)
    names = {f.name for f in dataclasses.fields(schema)}
    return schema(**{key: hints[key](**value) if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict)
                     else value for key, value in values.items() if key in names})


def cli_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


#: The environment of the tests' CLI runs as the session starts, before any test sets a variable: the fork server's.
CLI_ENV = cli_env()


def run_cli(args: list[str], cwd: Path, timeout: float = 300, fork: bool = True,
            **popen: Any) -> subprocess.CompletedProcess:
    """`python -m rlexp <args>` in `cwd`, as a user would type `rlexp <args>` there: a process of its own, forked
    from a warm interpreter (tests/forkserver.py) unless `fork=False` asks for a new interpreter (for what only a
    new interpreter shows: what it imports, and from where)."""
    proc = start_cli(args, cwd, fork=fork, **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.wait(), out, err)


def run_in_process(args: list[str], cwd: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> subprocess.CompletedProcess:
    """`rlexp <args>` called in this process, for refusals (and for eval, plot or export runs whose command another
    test runs as a user types it): the same entry point and output as `run_cli`, without a new interpreter importing
    torch and Hydra each time. `rlexp train` runs Hydra's own command line here too, for a command refused before it
    trains (its command line, composed config, run to resume or env refused): what it changes in a process is put
    back afterwards (`train_state_kept`). A command that trains runs with `run_cli`, or, for the runs a test only
    compares or reads, `train_in_process`."""
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    returncode = _main_in_process(args, monkeypatch)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["rlexp", *args], returncode, out, err)


def one_line(proc: subprocess.CompletedProcess) -> str:
    """A refused command's error: one line on stderr (asserted), returned."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def refusal_to_read(reader: str, cwd: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                    resume_steps: int) -> str:
    """The one-line refusal of reading the run at cwd/run by `reader`: `rlexp.load`, `rlexp eval`, `rlexp export`,
    or a resume to `resume_steps`, each in process (a command's exit code 2 asserted)."""
    from rlexp.errors import ConfigError

    if reader == "load":
        import rlexp

        monkeypatch.chdir(cwd)
        with pytest.raises(ConfigError) as refused:
            rlexp.load("run")
        return str(refused.value)
    args = {"eval": ["eval", "run", "episodes=1"], "export": ["export", "run", "format=torchscript", "states=8"],
            "resume": ["train", "resume=run", f"total_steps={resume_steps}"]}[reader]
    proc = run_in_process(args, cwd, capsys, monkeypatch)
    assert proc.returncode == 2
    return one_line(proc)


def train_in_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`rlexp train ...` (`args` begin with "train") trained in this process, for the runs a test only compares its
    subject with or reads back, whose command line another test runs as a user types it: the uninterrupted
    reference of a killed-and-resumed run, a finished run made once. It computes what `run_cli` computes (one torch
    thread here too, the process's own state put back afterwards), without the new interpreter's ~1.5 s of torch
    and Hydra imports. Usable outside a test's fixtures (in made_once's `make`)."""
    assert args[:1] == ["train"], args
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        monkeypatch.chdir(cwd)
        returncode = _main_in_process(args, monkeypatch)
    torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["rlexp", *args], returncode, out.getvalue(), err.getvalue())


def _main_in_process(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """rlexp's entry point called here, its exit code returned; what a command may seed, and what `rlexp train`
    changes in a process, put back."""
    from rlexp.commands import main

    streams = random.getstate(), np.random.get_state(), torch.get_rng_state()   # what a command may seed
    environment = dict(os.environ)   # what a command may set (rlexp eval: SDL's drivers), which the fork server's
    #                                  runs must not inherit: a test after it would get a new interpreter instead
    with train_state_kept(monkeypatch) if args[:1] == ["train"] else contextlib.nullcontext():
        try:
            return main(args)
        except SystemExit as stop:   # rlexp train exits as Hydra's task does
            return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        finally:
            random.setstate(streams[0])
            np.random.set_state(streams[1])
            torch.set_rng_state(streams[2])
            os.environ.clear()
            os.environ.update(environment)


@contextlib.contextmanager
def train_state_kept(monkeypatch: pytest.MonkeyPatch) -> typing.Iterator[None]:
    """What `rlexp train` changes in its process, put back once it ran in this one: sys.argv (which Hydra parses),
    Hydra's run_and_report (rlexp replaces it), its config singletons and the logging Hydra configures for the job
    (a console handler and the run's train.log)."""
    import hydra._internal.utils as hydra_utils
    from hydra.core.hydra_config import HydraConfig

    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(hydra_utils, "run_and_report", hydra_utils.run_and_report)
    monkeypatch.setattr(HydraConfig.instance(), "cfg", HydraConfig.instance().cfg)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)   # as cli_env() leaves it

    def loggers() -> list[logging.Logger]:
        return [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger))]

    saved = {logger: (logger.handlers[:], logger.level, logger.propagate, logger.disabled) for logger in loggers()}
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        for logger in loggers():
            handlers, level, propagate, disabled = saved.get(logger, ([], logging.NOTSET, True, False))
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.handlers[:] = handlers
            logger.level, logger.propagate, logger.disabled = level, propagate, disabled
        logging.Logger.manager._clear_cache()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "as_typed: the case of a family of refusals that the `rlexp` fixture runs as a "
                                       "subprocess, as a user types it (the others run in process)")


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str,
              make: typing.Callable[[Path], Any]) -> tuple[Path, Any]:
    """A directory that `make(directory)` fills once per test session, shared by the tests and the pytest-xdist
    workers that ask for `name`: the first to ask makes it, holding a lock, the others wait for it. Returns the
    directory and what `make` returned (JSON data). For runs and sweeps that tests read, or copy before they change
    them: a module-scoped fixture would be made again by each worker, and again whenever a worker comes back to its
    module (the suite runs in the order of pytest_collection_modifyitems, not module by module)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    root = tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.getbasetemp()   # the session's
    directory, made = root / f"made-{name}", root / f"made-{name}.json"
    with open(root / f"made-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not made.exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            made.write_text(json.dumps(make(directory)))
    return directory, json.loads(made.read_text())


def completed(proc: subprocess.CompletedProcess) -> dict[str, Any]:
    """A finished process as JSON data (for made_once), and back: `as_completed`."""
    return {"args": list(proc.args), "returncode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def as_completed(data: dict[str, Any]) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(data["args"], data["returncode"], data["stdout"], data["stderr"])


#: The calls by which a test starts processes (`rlexp` CLI runs above all) or trains in process: a test's count of
#: them orders the suite.
SPAWNS = re.compile(r"\b(run_cli|run_cli_without|start_cli|interrupt_mid_run|train_in_process|train_seeds_in_lockstep"
                    r"|subprocess\.run|subprocess\.Popen)\(")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that start the most processes first, the in-process unit tests last: a stable sort on the count of
    process-starting calls in a test's source and in its fixtures'. Under pytest-xdist the many short tests then fill
    the end of the run, so no worker idles while another finishes a long CLI test. (The fixtures that train for
    several tests are made once per session: made_once.)"""
    @functools.cache
    def spawns(function: typing.Callable[..., object]) -> int:
        try:
            return len(SPAWNS.findall(inspect.getsource(function)))
        except (OSError, TypeError):
            return 0

    def weight(item: pytest.Item) -> int:
        if not isinstance(item, pytest.Function):
            return 0
        module = item.nodeid.split("::")[0]   # its module's fixtures (the conftest's only start what tests ask)
        fixtures = [defs[-1].func for defs in item._fixtureinfo.name2fixturedefs.values()
                    if defs and defs[-1].baseid == module]
        return spawns(item.function) + sum(spawns(func) for func in fixtures)

    weights = {item: weight(item) for item in items}
    items.sort(key=lambda item: -weights[item])


@pytest.fixture
def rlexp(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str],
          monkeypatch: pytest.MonkeyPatch) -> typing.Callable[..., subprocess.CompletedProcess]:
    """`rlexp(args, cwd)`: `rlexp <args>` refused in `cwd`. The case marked `as_typed` of a parametrized family of
    refusals runs as a subprocess (`run_cli`), as a user types it; the others in this process (`run_in_process`),
    with the same entry point and output, without an interpreter importing torch and Hydra for each."""
    as_typed = request.node.get_closest_marker("as_typed") is not None

    def call(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
        return run_cli(args, cwd=cwd) if as_typed else run_in_process(args, cwd, capsys, monkeypatch)

    return call


#: One interpreter running several `rlexp` commands, with some modules made unimportable: argv[1] the modules,
#: argv[2] the commands (JSON); prints each command's exit status and stderr (JSON) as its last line.
_WITHOUT = """
import contextlib, io, json, sys
for name in json.loads(sys.argv[1]):
    sys.modules[name] = None
from rlexp.commands import main
results = []
for args in json.loads(sys.argv[2]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def run_cli_without(modules: list[str], commands: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess]:
    """Each of `commands` (`rlexp <args>`) run one after another in `cwd` by one new interpreter in which `modules`
    cannot be imported (`import <module>` fails), as on a machine without them: each one's exit status and stderr.
    One interpreter for the commands, rather than one each importing torch and Hydra."""
    proc = subprocess.run([sys.executable, "-c", _WITHOUT, json.dumps(modules), json.dumps(commands)], cwd=cwd,
                          capture_output=True, text=True, env=cli_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [subprocess.CompletedProcess(["rlexp", *args], code, "", err)
            for args, (code, err) in zip(commands, json.loads(proc.stdout.splitlines()[-1]), strict=True)]


def start_cli(args: list[str], cwd: Path, fork: bool = True, **popen: Any) -> forkserver.Forked | subprocess.Popen:
    """`rlexp <args>` started in the background, for tests that signal or kill it (`start_new_session=True`: in a
    process group of its own, as a shell job is, for signals to the whole group); forked unless `fork=False`."""
    return forkserver.start(args, cwd, cli_env(), CLI_ENV, fork, **popen)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until `path` exists; fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {path.name} appeared: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def interrupt_mid_run(args: list[str], cwd: Path, first: Path, signum: int, reference: Path) -> float:
    """Start `rlexp <args>`, wait for its first checkpoint `first`, and send `signum` anywhere after it, even
    mid-save: within the first half of the training time the uninterrupted `reference` run took (its
    results.json; a many-seeds run's seed_<s>/results.json), so a faster machine never signals a finished run.
    Returns the delay."""
    results = reference / "results.json"
    if "train_time_s" not in json.loads(results.read_text()):
        results = next(reference.glob("seed_*/results.json"))
    proc = start_cli(args, cwd)
    wait_for(first, proc)
    delay = random.uniform(0.0, 0.5 * json.loads(results.read_text())["train_time_s"])
    time.sleep(delay)
    if proc.poll() is not None:
        pytest.fail(f"the run finished within {delay:.2f} s; make it longer")
    proc.send_signal(signum)
    proc.communicate(timeout=60)
    assert proc.returncode == (-9 if signum == signal.SIGKILL else 128 + signum), f"delay {delay:.2f} s"
    return delay


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def snapshot(directory: Path) -> dict[str, str]:
    """Every file below `directory` and a hash of its bytes (and every directory, as such): what a refused command
    must leave as it was."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(directory.rglob("*"))}


def train_job(config: dict[str, Any], spec: Any, run_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """A resolved config trained in this process on the CPU as `rlexp train` trains it (runners/job.py's Job, its
    steps served to its agent). Returns the job, what it built first (its agent and replay, `Built`) and the
    results it wrote."""
    from rlexp.runners.faults import StopRequest
    from rlexp.runners.job import Job
    from rlexp.runners.requests import serve

    job = Job.prepare(config, spec, torch.device("cpu"))
    steps = job.steps(run_dir, StopRequest(), [])
    built = next(steps)
    return job, built, serve(steps, built.agent)


def train_seeds_in_lockstep(spec: Any, config: dict[str, Any], directory: Path,
                            check: typing.Callable[[list[Any], Any], None] | None = None,
                            prepare: typing.Callable[[Any], None] | None = None
                            ) -> tuple[list[Any], list[Any], list[Any]]:
    """`config`'s `seeds` trained in this process as `rlexp train seeds=[...]` trains them: one job per seed (each
    given to `prepare`, if any, before it runs), stepping in lockstep as one batched model (`spec.members`); `check`
    sees the members and the batched model once they are made. Each seed's run goes to directory/seed_<i>; every seed
    must end without an error. Returns the jobs, the members (one agent per seed, in seed order) and the seeds'
    outcomes."""
    from rlexp.runners.faults import StopRequest
    from rlexp.runners.job import Job
    from rlexp.runners.many_seeds import config_of_seed
    from rlexp.runners.seeds import run_in_lockstep

    seeds = list(config["seeds"])
    jobs = [Job.prepare(config_of_seed(config, seed, i), spec, torch.device("cpu"), copies=len(seeds))
            for i, seed in enumerate(seeds)]
    for job in jobs:
        if prepare is not None:
            prepare(job)
    members: list[Any] = []

    def batch(agents: list[Any]) -> Any:
        members.extend(agents)
        batched = spec.members(agents)
        if check is not None:
            check(agents, batched)
        return batched

    outcomes = run_in_lockstep(seeds, [job.steps(directory / f"seed_{i}", StopRequest(), [])
                                       for i, job in enumerate(jobs)], batch)
    assert [o.error for o in outcomes] == [None] * len(seeds)
    return jobs, members, outcomes

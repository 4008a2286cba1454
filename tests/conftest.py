"""Shared fixtures: Hydra's compose API over conf/, and the CLI run as a user types it."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import random
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
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from rlexp.commands.configstore import register

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


def compose_config(overrides: list[str]) -> DictConfig:
    register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=False)


def cli_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_cli(args: list[str], cwd: Path, timeout: float = 300, **popen: object) -> subprocess.CompletedProcess:
    """`python -m rlexp <args>` in `cwd`, as a user would type `rlexp <args>` there."""
    return subprocess.run([sys.executable, "-m", "rlexp", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=cli_env(), **popen)


def run_in_process(args: list[str], cwd: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> subprocess.CompletedProcess:
    """`rlexp <args>` called in this process, for refusals (and for eval, plot or export runs whose command another
    test runs as a user types it): the same entry point and output as `run_cli`, without a new interpreter importing
    torch and Hydra each time. `rlexp train` runs Hydra's own command line here too, for a command refused before it
    trains (its command line, composed config, run to resume or env refused): what it changes in a process is put
    back afterwards (`train_state_kept`). A command that trains runs with `run_cli`."""
    from rlexp.commands import main

    monkeypatch.chdir(cwd)
    capsys.readouterr()
    streams = random.getstate(), np.random.get_state(), torch.get_rng_state()   # what a command may seed
    with train_state_kept(monkeypatch) if args[:1] == ["train"] else contextlib.nullcontext():
        try:
            returncode = main(args)
        except SystemExit as stop:   # rlexp train exits as Hydra's task does
            returncode = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        finally:
            random.setstate(streams[0])
            np.random.set_state(streams[1])
            torch.set_rng_state(streams[2])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["rlexp", *args], returncode, out, err)


@contextlib.contextmanager
def train_state_kept(monkeypatch: pytest.MonkeyPatch) -> typing.Iterator[None]:
    """What `rlexp train` changes in its process, put back once it ran in this one: sys.argv (which Hydra parses),
    Hydra's run_and_report (rlexp replaces it), its config singletons and the logging Hydra configures for the job
    (a console handler and the run's train.log)."""
    import hydra._internal.utils as hydra_utils
    from hydra.core.global_hydra import GlobalHydra
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


def start_cli(args: list[str], cwd: Path) -> subprocess.Popen:
    """`rlexp <args>` started in the background, for tests that signal or kill it."""
    return subprocess.Popen([sys.executable, "-m", "rlexp", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env())


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

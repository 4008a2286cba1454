"""Shared fixtures: Hydra's compose API over conf/, and the CLI run as a user types it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

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
    """`rlexp <args>` (eval, plot or export, never train: Hydra keeps global state) called in this process, for
    refusals: the same entry point and output as `run_cli`, without a new interpreter importing torch each time."""
    from rlexp.commands import main

    monkeypatch.chdir(cwd)
    capsys.readouterr()
    returncode = main(args)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["rlexp", *args], returncode, out, err)


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

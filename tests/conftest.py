"""Shared fixtures: Hydra's compose API over conf/, and the CLI run as a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"

# Tiny budgets that still exercise updates, evaluation and checkpoints.
TINY = ["eval.episodes=2", "eval.every=200", "checkpoint.every=200", "log.every=50", "log.progress=lines",
        "torch_threads=1"]


def compose_config(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=False)


def run_cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m rlexp <args>` in `cwd`, as a user would type `rlexp <args>` there."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "rlexp", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path

"""The tests' forked CLI runs (tests/forkserver.py) are what `python -m rlexp` runs in a new interpreter."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from rlexp.io.checkpoints import load_checkpoint
from tests.conftest import run_cli, start_cli, wait_for
from tests.forkserver import Forked

RUN = ["train", "algo=dqn", "env=CartPole-v1", "total_steps=400", "algo.learning_starts=100", "eval.every=200",
       "eval.episodes=2", "checkpoint.every=200", "log.every=100", "log.progress=lines", "torch_threads=1"]


def test_a_forked_run_prints_writes_and_learns_what_a_new_interpreters_does(tmp_path: Path) -> None:
    runs = {}
    for fork in (True, False):
        cwd = tmp_path / str(fork)
        cwd.mkdir()
        runs[fork] = run_cli([*RUN, "hydra.run.dir=run"], cwd, fork=fork), cwd / "run"
        assert runs[fork][0].returncode == 0, runs[fork][0].stderr
    (forked, forked_dir), (new, new_dir) = runs[True], runs[False]

    def lines(proc, directory):   # the output, less the clock and the run's own path
        return [line.split("] ", 1)[-1].replace(str(directory), "<run>")
                for line in proc.stdout.splitlines() if "SPS" not in line]

    assert lines(forked, forked_dir) == lines(new, new_dir) and forked.stderr == new.stderr
    results = [json.loads((d / "results.json").read_text()) for d in (forked_dir, new_dir)]
    assert results[0]["eval_returns"] == results[1]["eval_returns"]
    a, b = (load_checkpoint(d / "checkpoints" / "final.pt")["agent"]["q_network"] for d in (forked_dir, new_dir))
    assert all(torch.equal(a[key], b[key]) for key in a)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="runs fork from a warm interpreter on Linux only")
def test_a_forked_run_is_a_process_of_its_own_that_signals_end(tmp_path: Path) -> None:
    refused = run_cli(["train", "algo=dqnn"], tmp_path)
    assert refused.returncode == 2 and refused.stderr.startswith("rlexp train: error: algo=dqnn is not an option")
    proc = start_cli([*RUN, "total_steps=100000", "hydra.run.dir=run"], tmp_path, start_new_session=True)
    assert isinstance(proc, Forked) and os.getpgid(proc.pid) == proc.pid != os.getpgid(0)   # its own session
    assert Path(f"/proc/{proc.pid}/cwd").resolve() == tmp_path.resolve()
    wait_for(tmp_path / "run" / "checkpoints" / "step_200.pt", proc)
    assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGINT)   # Ctrl-C to the group: rlexp's own ending, its exit status 130
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted by SIGINT" in err, err
    killed = start_cli([*RUN, "total_steps=100000", "hydra.run.dir=killed"], tmp_path)
    time.sleep(0.5)
    killed.kill()
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL

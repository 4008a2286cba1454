"""A many-seeds run never rewinds a seed silently: a seed extended on its own is not pulled back by a resume of its
batch, and a batch resume treats each seed's unreadable newest checkpoint and a save's leftover temp file as a single
run's resume does (warned, renamed *.corrupt, removed), continuing every seed from one step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from rlexp.commands.accept import accept_seeds_resume
from rlexp.io.checkpoints import load_checkpoint
from tests.conftest import run_cli, run_in_process, snapshot
from tests.test_seeds import three_seeds  # noqa: F401  (the module-scoped fixture, made once per session)


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def agent(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["agent"]["q_network"]


def test_a_seed_extended_alone_is_never_rewound_by_its_batch(workdir, three_seeds, capsys, monkeypatch):  # noqa: F811
    run = workdir / "run"
    shutil.copytree(three_seeds, run, symlinks=True)
    alone = run_cli(["train", "resume=run/seed_1", "total_steps=900"], cwd=workdir)
    assert alone.returncode == 0, alone.stderr
    seed_1 = snapshot(run / "seed_1")
    before = snapshot(run)
    refused = run_in_process(["train", "resume=run", "total_steps=1200"], workdir, capsys, monkeypatch)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert ("seed 1 is at step 900 (trained on its own), ahead of seeds [0, 2] at step 600" in refused.stderr
            and "run total_steps=900` (seeds finished there are left as they are)" in refused.stderr
            and "/seed_1 total_steps=<more>" in refused.stderr), refused.stderr
    assert snapshot(run) == before   # nothing on disk changed
    assert load_checkpoint(run / "seed_1" / "checkpoints" / "step_900.pt")["batch_seeds"] is None   # its own
    assert load_checkpoint(run / "seed_0" / "checkpoints" / "step_600.pt")["batch_seeds"] == [0, 1, 2]
    # Had seed 1's own run been killed (its results.json still the batch's), it must first finish alone
    finished_alone = (run / "seed_1" / "results.json").read_bytes()
    shutil.copy(three_seeds / "seed_1" / "results.json", run / "seed_1" / "results.json")
    killed = run_in_process(["train", "resume=run", "total_steps=1200"], workdir, capsys, monkeypatch)
    assert killed.returncode == 2 and "bring every seed to one step alone (rlexp train resume=" in killed.stderr \
        and "/seed_<s> total_steps=900), then resume the batch" in killed.stderr, killed.stderr
    (run / "seed_1" / "results.json").write_bytes(finished_alone)
    # Meanwhile seed 2's newest checkpoint was cut in half, and a save left a temp file in seed 0's directory:
    # seed 2 can go on from step 300 only, and seed 0 finished at 600 (it is not rewound: refused, nothing touched)
    newest = run / "seed_2" / "checkpoints" / "step_600.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    leftover = run / "seed_0" / "checkpoints" / ".step_600.pt.x1y2.tmp"
    leftover.write_bytes(b"half a save")
    damaged = snapshot(run)
    finished = run_in_process(["train", "resume=run", "total_steps=900"], workdir, capsys, monkeypatch)
    assert finished.returncode == 2 and finished.stderr.count("\n") == 1, finished.stderr
    assert ("seed 0 finished at step 600, ahead of seed 2 at step 300, seed 2's newer step_600.pt unreadable" in
            finished.stderr and "/seed_2 total_steps=600), then resume the batch" in finished.stderr), finished.stderr
    assert snapshot(run) == damaged
    # Killed before seeds 0 and 2 finished (their step_600.pt written, not yet final.pt and results.json): the
    # batch's own unfinished step, which seed 0 continues from 300 with seed 2 and makes again
    for seed in (0, 2):
        (run / f"seed_{seed}" / "results.json").unlink()
        (run / f"seed_{seed}" / "checkpoints" / "final.pt").unlink()
    seed_0_at_600 = agent(run / "seed_0" / "checkpoints" / "step_600.pt")
    damaged = snapshot(run)
    resumes = accept_seeds_resume(_config(run, 900), run, torch.device("cpu"))
    assert sorted(resumes) == [0, 2] and {r.path.name for r in resumes.values()} == {"step_300.pt"}
    assert resumes[0].ahead == 600 and resumes[2].unreadable[0][0] == newest and snapshot(run) == damaged
    up = run_cli(["train", "resume=run", "total_steps=900"], cwd=workdir)
    assert up.returncode == 0, up.stderr
    log = up.stdout + up.stderr
    assert "resuming seeds [0, 2] from step 300" in log, log
    assert "seed 2: checkpoint" in log and "step_600.pt.corrupt" in log, log
    assert "seeds [0] have newer checkpoints of this batch (seed 0: step 600)" in log, log
    assert (run / "seed_2" / "checkpoints" / "step_600.pt.corrupt").is_file() and not leftover.exists()
    assert snapshot(run / "seed_1") == seed_1   # left as it was: finished at this budget
    for seed in (0, 2):
        assert results(run / f"seed_{seed}")["total_steps"] == 900
    # made again (under the new budget, which stretches epsilon's schedule: not the old one's)
    remade = agent(run / "seed_0" / "checkpoints" / "step_600.pt")
    assert load_checkpoint(run / "seed_0" / "checkpoints" / "step_600.pt")["config"]["total_steps"] == 900
    assert not all(torch.equal(seed_0_at_600[k], v) for k, v in remade.items())
    summary = results(run)
    assert summary["status"] == "completed" and summary["seeds"]["1"]["eval_return_mean"] == results(
        run / "seed_1")["eval_return_mean"]


def _config(run: Path, total_steps: int) -> dict:
    """The config a `resume=<run> total_steps=N` composes, as accept_seeds_resume reads it."""
    from omegaconf import OmegaConf
    config = OmegaConf.to_container(OmegaConf.load(run / ".hydra" / "config.yaml"), resolve=True)
    assert isinstance(config, dict)
    return {**config, "resume": str(run), "total_steps": total_steps}

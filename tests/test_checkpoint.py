"""Checkpoint files: atomic writes, safe and verified loads, rotation, fallback to the previous good one."""

import errno
import logging

import pytest
import torch

from rlexp.errors import CheckpointError
from rlexp.io.checkpoints import FORMAT, CheckpointManager, load_checkpoint, save_checkpoint


def bundle(step: int, **extra) -> dict:
    return {"format": FORMAT, "step": step, "agent": {"w": torch.full((64,), float(step))}, **extra}


def test_round_trip_with_weights_only(tmp_path):
    save_checkpoint(bundle(7, config={"algo": {"name": "dqn"}}), tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["step"] == 7 and torch.equal(loaded["agent"]["w"], torch.full((64,), 7.0))
    assert list(tmp_path.iterdir()) == [tmp_path / "c.pt"]  # no temp file left behind


def test_an_exception_during_a_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(bundle(1), path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(bundle(2, bad=Unpicklable()), path)
    assert load_checkpoint(path)["step"] == 1
    assert list(tmp_path.iterdir()) == [path]


def test_a_full_disk_is_a_clear_error_and_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(bundle(1), path)
    real_open = __import__("os").fdopen

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr("rlexp.io.checkpoints.os.fdopen", lambda fd, mode: FullDisk(real_open(fd, mode)))
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*c.pt: No space left on device"):
        save_checkpoint(bundle(2), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert list(tmp_path.iterdir()) == [path]


class Payload:
    """Stands for any object whose unpickling could run code."""


def test_loading_refuses_arbitrary_objects(tmp_path):
    torch.save({"format": FORMAT, "agent": {}, "x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil.pt holds pickled code or objects that are not plain data "
                                              r"\(tests.test_checkpoint.Payload\): rlexp never runs code"):
        load_checkpoint(tmp_path / "evil.pt")


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[: len(data) // 2], "truncated"),
    (lambda data: b"", "truncated"),
    (lambda data: data[:3000] + bytes(b ^ 0xFF for b in data[3000:3050]) + data[3050:], "corrupt|cannot be loaded"),
])
def test_damaged_files_are_named_in_a_clear_error(tmp_path, damage, message):
    path = tmp_path / "step_1.pt"
    save_checkpoint(bundle(1, big=torch.arange(4096.0)), path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=f"step_1.pt.*({message})"):
        load_checkpoint(path)


def test_files_that_are_not_rlexp_checkpoints_are_refused(tmp_path):
    torch.save({"step": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an rlexp checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": 999, "agent": {}}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format 999"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save({"format": 1, "agent": {}}, tmp_path / "old.pt")  # made before vectorized envs
    with pytest.raises(CheckpointError, match=r"format 1 \(rlexp 0.1, before vectorized envs\); this rlexp reads "
                                              r"format 2 only"):
        load_checkpoint(tmp_path / "old.pt")


def test_only_the_newest_periodic_checkpoints_are_kept(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    for step in (100, 200, 300, 1000):
        manager.save_periodic(bundle(step), step)
    manager.save_best(bundle(200))
    manager.save_final(bundle(1000))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "final.pt", "step_1000.pt", "step_300.pt"]
    assert manager.latest().name == "step_1000.pt"


def test_resume_falls_back_to_the_previous_good_checkpoint(tmp_path, caplog):
    manager = CheckpointManager(tmp_path, keep=3)
    for step in (100, 200, 300):
        manager.save_periodic(bundle(step), step)
    newest = tmp_path / "step_300.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    (tmp_path / ".step_400.pt.abc.tmp").write_bytes(b"partial")  # a save cut short by a kill
    with caplog.at_level(logging.WARNING, logger="rlexp"):
        loaded, path, unreadable = manager.load_latest()
    assert loaded["step"] == 200 and path.name == "step_200.pt"
    assert [(p.name, "truncated" in why) for p, why in unreadable] == [("step_300.pt", True)]
    # Loading changes nothing on disk and logs nothing: a resume that is then refused leaves the run as it was.
    assert newest.exists() and not (tmp_path / "step_300.pt.corrupt").exists() and caplog.text == ""
    with caplog.at_level(logging.WARNING, logger="rlexp"):
        manager.quarantine(unreadable)  # once the resume is accepted
    assert "step_300.pt" in caplog.text and "resumed from the previous checkpoint" in caplog.text
    assert (tmp_path / "step_300.pt.corrupt").exists() and not newest.exists()  # never picked again
    assert not list(tmp_path.glob(".*.tmp"))
    assert manager.load_latest()[1].name == "step_200.pt"


def test_resume_without_any_readable_checkpoint_is_an_error(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        manager.load_latest()

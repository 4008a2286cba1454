import pytest
import torch

from rlexp.checkpoint import CheckpointManager, load_checkpoint, save_checkpoint


def test_round_trip_with_weights_only(tmp_path):
    bundle = {"agent": {"w": torch.arange(3.0)}, "step": 7, "config": {"algo": {"name": "dqn"}}}
    save_checkpoint(bundle, tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["step"] == 7 and torch.equal(loaded["agent"]["w"], torch.arange(3.0))
    assert list(tmp_path.iterdir()) == [tmp_path / "c.pt"]  # no temp file left behind


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint({"step": 2, "bad": Unpicklable()}, path)
    assert load_checkpoint(path)["step"] == 1
    assert list(tmp_path.iterdir()) == [path]


class Payload:
    """Stands for any object whose unpickling could run code."""


def test_loading_refuses_arbitrary_objects(tmp_path):
    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_checkpoint(tmp_path / "evil.pt")


def test_only_the_newest_periodic_checkpoints_are_kept(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    for step in (100, 200, 300, 1000):
        manager.save_periodic({"step": step}, step)
    manager.save_best({"step": 200})
    manager.save_final({"step": 1000})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "final.pt", "step_1000.pt", "step_300.pt"]

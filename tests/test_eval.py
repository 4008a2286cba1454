"""`rlexp eval`, as a user runs it: a finished run's agent replayed, with and without a video."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY, cli_env, made_once, run_cli, run_in_process, train_in_process

RUN = ["train", "algo=td3", "env=Pendulum-v1", "total_steps=300", "algo.learning_starts=100",
       "network.hidden_sizes=[32]", *TINY]


def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of a finished TD3 run (at run/: the command RUN), trained once per session (made_once);
    evaluations write into the run's eval/ as they would. tests/test_cli.py's same-seed test copies it."""
    def make(workdir: Path) -> None:
        proc = train_in_process([*RUN, "hydra.run.dir=run"], workdir)
        assert proc.returncode == 0, proc.stderr

    return made_once(tmp_path_factory, "eval-finished", make)[0]


@pytest.fixture(name="finished_run", scope="module")
def finished_run_fixture(tmp_path_factory):
    return finished_run(tmp_path_factory)


def test_eval_reproduces_the_runs_final_evaluation(finished_run, capsys, monkeypatch):
    # (in process: `rlexp eval` as typed is the video test's)
    proc = run_in_process(["eval", "run", "episodes=2"], finished_run, capsys, monkeypatch)
    assert proc.returncode == 0, proc.stderr
    trained = json.loads((finished_run / "run" / "results.json").read_text())
    evaluated = json.loads((finished_run / "run" / "eval" / "final.json").read_text())
    assert evaluated["eval_returns"] == trained["eval_returns"]  # same agent, same seeds, same episodes
    assert f"mean return {trained['eval_return_mean']:.2f}" in proc.stdout and "over 2 episodes" in proc.stdout
    # num_envs=1: one env plays both episodes, the second from its own generator rather than from a reset seeded
    # with the seed + 1 (the evaluation's default, two envs); the first alike, to the rounding of a batch of 1
    # rather than 2 in the forward pass
    one = run_in_process(["eval", "run", "episodes=2", "num_envs=1"], finished_run, capsys, monkeypatch)
    assert one.returncode == 0, one.stderr
    returns = json.loads((finished_run / "run" / "eval" / "final.json").read_text())["eval_returns"]
    assert returns[0] == pytest.approx(trained["eval_returns"][0], rel=1e-6)
    assert returns[1] != pytest.approx(trained["eval_returns"][1], rel=1e-3)


def test_a_stochastic_policys_evaluation_draws_alike_in_training_and_in_eval(tmp_path, capsys, monkeypatch):
    # eval.deterministic=false: draws from PPO's policy, from a generator seeded like the env; `rlexp eval` of the
    # run draws them again (the run's key is its default), and deterministic=true gives the mode's returns
    proc = train_in_process(["train", "algo=ppo", "env=CartPole-v1", "total_steps=256", "env.num_envs=2",
                             "algo.n_steps=64", "algo.batch_size=64", "eval.deterministic=false", "eval.episodes=3",
                             *TINY[1:], "hydra.run.dir=run"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    trained = json.loads((tmp_path / "run" / "results.json").read_text())
    drawn = run_in_process(["eval", "run", "episodes=3"], tmp_path, capsys, monkeypatch)
    assert drawn.returncode == 0, drawn.stderr
    evaluated = json.loads((tmp_path / "run" / "eval" / "final.json").read_text())
    assert evaluated["eval_returns"] == trained["eval_returns"] and evaluated["deterministic"] is False
    mode = run_in_process(["eval", "run", "episodes=3", "deterministic=true"], tmp_path, capsys, monkeypatch)
    assert mode.returncode == 0, mode.stderr
    assert json.loads((tmp_path / "run" / "eval" / "final.json").read_text())["deterministic"] is True


def test_eval_writes_a_video_of_the_first_episode(finished_run):
    import imageio.v2 as imageio

    proc = run_cli(["eval", "run/checkpoints/best.pt", "episodes=1", "video=true", "seed=3"], cwd=finished_run)
    assert proc.returncode == 0, proc.stderr
    video = finished_run / "run" / "eval" / "best.mp4"
    assert "video: run/eval/best.mp4" in proc.stdout and proc.stderr == ""
    reader = imageio.get_reader(video)
    assert reader.count_frames() == 201 and reader.get_meta_data()["size"] == (500, 500)  # reset + 200 steps


@pytest.mark.parametrize("args, message", [
    pytest.param(["nowhere"], "nowhere is neither a run directory nor a checkpoint file", marks=pytest.mark.as_typed),
    (["run", "episodes=0"], "episodes=0 must be a positive integer"),
    (["run", "num_envs=0"], "num_envs=0 must be a positive integer"),
    (["run", "video=maybe"], "video=maybe must be true or false"),
    (["run", "checkpoint=last"], "checkpoint=last must be final or best"),
    (["run", "deterministic=false"], "deterministic=false draws actions from a stochastic policy, and algo=td3's "
     "policy is deterministic (its exploration is added noise or epsilon, not a policy); algo=a2c, algo=crossq, "
     "algo=ppo, algo=sac or algo=tqc have one"),
    (["run", "colour=red"], "colour is not an option of rlexp eval; use episodes, video, checkpoint, seed, device"),
    ([".", "run"], "give one run directory or checkpoint file, got 2"),
    ([], "give one run directory or checkpoint file (rlexp eval --help)"),
])
def test_bad_eval_input_is_one_line_and_exit_2(finished_run, rlexp, args, message):
    proc = rlexp(["eval", *args], cwd=finished_run)
    assert proc.returncode == 2 and proc.stderr.startswith("rlexp eval: error: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_corrupt_checkpoint_is_named(finished_run, tmp_path, capsys, monkeypatch):
    broken = tmp_path / "broken.pt"
    broken.write_bytes((finished_run / "run" / "checkpoints" / "final.pt").read_bytes()[:500])
    proc = run_in_process(["eval", str(broken)], finished_run, capsys, monkeypatch)
    assert proc.returncode == 1 and "broken.pt is truncated" in proc.stderr


def test_eval_takes_a_sweep_job_directory_whose_name_has_equal_signs(finished_run, tmp_path, capsys, monkeypatch):
    import shutil

    job_dir = tmp_path / "sweep" / "0_algo.lr=0.001,seed=0"
    shutil.copytree(finished_run / "run", job_dir)
    proc = run_in_process(["eval", str(job_dir), "episodes=1"], finished_run, capsys, monkeypatch)
    assert proc.returncode == 0, proc.stderr
    assert (job_dir / "eval" / "final.json").is_file()


@pytest.mark.parametrize("args", [["eval", "no/such/run"], ["export", "no/such/run", "format=onnx"],
                                  ["export", "no/such/run", "format=bad"]])
def test_a_wrong_path_or_format_is_refused_before_torch_is_imported(workdir, args):
    # A typo should answer at once: importing torch alone takes a second or more.
    check = ("import sys; from rlexp.commands import main; code = main(sys.argv[1:]); "
             "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", check, *args], cwd=workdir, capture_output=True, text=True,
                          env=cli_env())
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "error:" in proc.stderr

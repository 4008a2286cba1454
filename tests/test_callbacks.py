"""Callbacks (`callbacks=[{_target_: ..., <kwargs>}]`): the hooks a run calls, logging and stopping from them, their
state through exact resume (tests/test_resume.py's dqn_solved case, killed), and their refusals in one line."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rlexp.errors import ConfigError, RunFailure
from rlexp.io.checkpoints import load_checkpoint
from rlexp.runners.callbacks import Callbacks, Entry, Run, StopOnEvalReturn, StopOnMeanReturn, build_callbacks
from rlexp.runners.stopping import StopRules, StopWatch
from tests.conftest import made_once, one_line, run_cli, run_in_process, snapshot, train_in_process
from tests.test_resume import scalars
from tests.toy_callbacks import Tally

DQN = ["algo=dqn", "env=CartPole-v1", "algo.learning_starts=200", "network.hidden_sizes=[32]", "log.progress=none",
       "torch_threads=1", "eval.episodes=2"]
RECORDER = "callbacks=[{_target_: tests.toy_callbacks.Recorder, label: mine}]"


# --- building them: every refusal one line, before anything is built ----------------------------------------------

@pytest.mark.parametrize("value, message", [
    ("[{_target_: tests.toy_callbacks.Nowhere}]",
     "callbacks[0] (tests.toy_callbacks.Nowhere) does not import: module tests.toy_callbacks has no attribute or "
     "submodule 'Nowhere'"),
    ("[{_target_: no_such_package.Callback}]",
     "callbacks[0] (no_such_package.Callback) does not import: no module named 'no_such_package'"),
    ("[{_target_: tests.toy_callbacks.NoHooks}]",
     "callbacks[0] (tests.toy_callbacks.NoHooks) built a NoHooks, which has none of the hooks on_run_start"),
    ("[{_target_: tests.toy_callbacks.Misspelt}]",
     "callbacks[0] (tests.toy_callbacks.Misspelt) has on_evaluate, which no run calls: the hooks are on_run_start"),
    ("[{_target_: tests.toy_callbacks.StopAt, stp: 3}]",
     "callbacks[0] (tests.toy_callbacks.StopAt) cannot be called with the keyword arguments ['stp']"),
    ("[{_target_: rlexp.runners.callbacks.StopOnMeanReturn, bar: 1, window: 0}]",
     "callbacks[0] (rlexp.runners.callbacks.StopOnMeanReturn) raised ValueError when built: window=0 must be at "
     "least 1"),
    ("[{_target_: rlexp.__version__}]", "callbacks[0] (rlexp.__version__) is a str, not a callback class"),
    ("[{every: 3}]", "callbacks[0]={'every': 3} needs _target_"),
    ("[{_target_: tests.toy_callbacks.Recorder, _partial_: true}]",
     "has _partial_: an entry takes _target_ and the callback's keyword arguments only"),
])
def test_a_callback_that_cannot_be_built_is_refused_in_one_line(workdir, value, message, capsys, monkeypatch):
    proc = run_in_process(["train", *DQN, f"callbacks={value}", "hydra.run.dir=run"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and message in one_line(proc)
    assert not (workdir / "run" / "checkpoints").exists() and not list((workdir / "run").glob("events.*"))


def test_callbacks_must_be_a_list(workdir, capsys, monkeypatch):
    proc = run_in_process(["train", *DQN, "callbacks={_target_: tests.toy_callbacks.Recorder}"], workdir, capsys,
                          monkeypatch)
    assert proc.returncode == 2 and "callbacks" in one_line(proc)


def test_a_function_returning_a_callback_is_a_target():
    [entry] = build_callbacks([{"_target_": "tests.toy_callbacks.made_by_a_function", "label": "f"}])
    assert entry.name == "callbacks[0] (tests.toy_callbacks.made_by_a_function)" and entry.callback.label == "f"


def run_view(tmp_path: Path, logged: list) -> Run:
    return Run(tmp_path, 0, 100, {}, _log=lambda values, step: logged.append((step, values)))


def test_a_hook_that_raises_is_a_run_failure_naming_it(tmp_path):
    callbacks = Callbacks(build_callbacks([{"_target_": "tests.toy_callbacks.Raises", "hook": "on_step"}]),
                          run_view(tmp_path, []))
    callbacks.run.step = 7
    with pytest.raises(RunFailure, match=r"^callbacks\[0\] \(tests.toy_callbacks.Raises\).on_step raised ValueError: "
                                         r"planned failure in on_step at step 7$"):
        callbacks.call("on_step")


def test_a_state_a_checkpoint_cannot_hold_is_named(tmp_path):
    callbacks = Callbacks(build_callbacks([{"_target_": "tests.toy_callbacks.Unsaveable"}]), run_view(tmp_path, []))
    with pytest.raises(RunFailure, match=r"Unsaveable\).state_dict\(\) holds a object: a checkpoint keeps numbers"):
        callbacks.state_dict()


def test_log_and_stop_from_a_callback(tmp_path):
    logged: list = []
    run = run_view(tmp_path, logged)
    run.step, run._naming = 40, "callbacks[1] (x.Y)"
    run.log({"custom/a": 1, "custom/b": np.float32(2.5)})
    assert logged == [(40, {"custom/a": 1.0, "custom/b": 2.5})]
    with pytest.raises(TypeError, match="run.log's 'custom/c' must be a number"):
        run.log({"custom/c": "high"})
    run.stop("enough")
    run.stop("again")   # the first reason stands
    assert run.stop_reason == "callbacks[1] (x.Y): enough"


def test_state_goes_back_by_position_and_target(tmp_path):
    made = [{"_target_": "tests.toy_callbacks.Tally"}, {"_target_": "tests.toy_callbacks.Recorder"}]
    first = Callbacks(build_callbacks(made), run_view(tmp_path, []))
    first.entries[0].callback.steps = 12
    saved = first.state_dict()
    assert saved[0] == {"target": "tests.toy_callbacks.Tally", "state": {"steps": 12, "return_sum": torch.zeros(())}}
    later = Callbacks(build_callbacks(made[::-1] + made[:1]), run_view(tmp_path, []))
    # (position 0 now holds a Recorder, position 1 a Tally: neither matches; position 2 had no state)
    assert later.load_state_dict(saved) == [entry.name for entry in later.entries]
    again = Callbacks(build_callbacks(made), run_view(tmp_path, []))
    assert again.load_state_dict(saved) == [] and again.entries[0].callback.steps == 12


def test_the_stop_rules_as_callbacks_stop_where_the_rules_stop(tmp_path):
    """StopOnMeanReturn and StopOnEvalReturn against the StopWatch of stop.mean_return / stop.eval_return, on the
    same episodes and evaluations."""
    rng = np.random.default_rng(0)
    watch = StopWatch(StopRules(window=5, mean_return=30.0))
    rule = StopOnMeanReturn(bar=30.0, window=5)
    run = run_view(tmp_path, [])
    for step in range(1, 200):
        returns = rng.uniform(0, 40, size=rng.integers(0, 3))
        solved = watch.episodes_ended(returns, step)
        rule.on_episodes(returns, np.ones_like(returns), run)
        assert (run.stop_reason is not None) == (watch.solved is not None)
        if solved:
            break
    assert watch.solved is not None and "mean return of the last 5 episodes" in run.stop_reason
    evaluations = StopWatch(StopRules(eval_return=20.0))
    by_eval, run = StopOnEvalReturn(bar=20.0), run_view(tmp_path, [])
    for step, mean in enumerate([5.0, 19.9, 20.0, 25.0]):
        evaluations.evaluated(mean, step)
        by_eval.on_evaluation(np.array([mean]), run)
        assert (run.stop_reason is not None) == (evaluations.solved is not None)


def test_an_entry_is_named_by_its_index_and_target():
    entries = build_callbacks([{"_target_": "tests.toy_callbacks.Tally"}, {"_target_": "rlexp.Callback"}])
    assert [e.name for e in entries] == ["callbacks[0] (tests.toy_callbacks.Tally)", "callbacks[1] (rlexp.Callback)"]
    assert isinstance(entries[0], Entry) and isinstance(entries[0].callback, Tally)


# --- through the CLI ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """Two seeds as one model, 1,000 steps, each with its own Recorder, as a user types it."""
    def make(root: Path) -> None:
        proc = run_cli(["train", *DQN, "seeds=[0,1]", "total_steps=1000", "eval.every=250", "checkpoint.every=500",
                        RECORDER, "hydra.run.dir=run"], cwd=root)
        assert proc.returncode == 0, proc.stderr

    return made_once(tmp_path_factory, "callbacks-recorded", make)[0] / "run"


def test_every_hook_is_called_where_the_run_is(recorded):
    for seed in (0, 1):
        hooks = json.loads((recorded / f"seed_{seed}" / "hooks.json").read_text())
        results = json.loads((recorded / f"seed_{seed}" / "results.json").read_text())
        assert hooks["label"] == "mine" and hooks["seen"]["seeds"] == [seed]   # each seed its own callback
        assert hooks["calls"] == {"on_run_start": 1, "on_step": 1000, "on_episodes": hooks["calls"]["on_episodes"],
                                  "on_evaluation": 4, "on_checkpoint": 2, "on_run_end": 1}
        assert hooks["seen"]["episodes"] == results["episodes"] > 0
        assert hooks["seen"]["start"] == {"step": 0, "resumed": False, "total_steps": 1000, "has_agent": True,
                                          "algo": "dqn"}
        assert [step for step, _ in hooks["seen"]["evaluations"]] == [250, 500, 750, 1000]
        assert hooks["seen"]["evaluations"][-1][1] == pytest.approx(results["eval_return_mean"])
        assert hooks["seen"]["checkpoints"] == ["step_500.pt", "step_1000.pt"]
        logged = scalars(recorded / f"seed_{seed}")["recorder/steps"]
        assert logged == [(250, 250.0), (500, 500.0), (750, 750.0), (1000, 1000.0)]


def test_an_on_policy_run_says_which_steps_end_a_rollout(workdir):
    proc = train_in_process(["train", "algo=ppo", "env=CartPole-v1", "total_steps=256", "env.num_envs=2",
                             "algo.n_steps=32", "algo.batch_size=32", "algo.n_epochs=1", "network.hidden_sizes=[16]",
                             "log.progress=none", "torch_threads=1", "eval.episodes=1", RECORDER,
                             "hydra.run.dir=run"], workdir)
    assert proc.returncode == 0, proc.stderr
    hooks = json.loads((workdir / "run" / "hooks.json").read_text())
    assert hooks["calls"]["on_step"] == 128   # vector steps of 2 envs
    assert hooks["seen"]["rollouts_done_at"] == [64, 128, 192, 256]   # 32 vector steps of 2 envs each


def test_a_callback_stops_a_run_where_the_stop_rule_does(workdir):
    """StopOnMeanReturn ends the run at the step `stop.mean_return` ends it; results.json says which callback."""
    common = ["train", *DQN, "total_steps=3000", "eval.every=0", "checkpoint.every=0"]
    rule = train_in_process([*common, "stop.window=5", "stop.mean_return=25", "hydra.run.dir=rule"], workdir)
    assert rule.returncode == 0, rule.stderr
    by_callback = train_in_process([*common, "callbacks=[{_target_: rlexp.runners.callbacks.StopOnMeanReturn, bar: 25,"
                                    " window: 5}]", "hydra.run.dir=callback"], workdir)
    assert by_callback.returncode == 0, by_callback.stderr
    a, b = (json.loads((workdir / d / "results.json").read_text()) for d in ("rule", "callback"))
    assert a["stopped_by"] == "solved" and b["stopped_by"] == "callback"
    assert a["total_steps"] == b["total_steps"] < 3000 and a["episodes"] == b["episodes"]
    assert b["stop_reason"].startswith("callbacks[0] (rlexp.runners.callbacks.StopOnMeanReturn): mean return of the "
                                       "last 5 episodes")


def test_a_run_a_callback_stopped_resumes_only_with_other_callbacks(workdir, capsys, monkeypatch):
    stop_at = "callbacks=[{_target_: tests.toy_callbacks.StopAt, step: 300}]"
    proc = run_cli(["train", *DQN, "total_steps=1000", "eval.every=0", "checkpoint.every=0", stop_at,
                    "hydra.run.dir=run"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "done: stopped by callbacks[0] (tests.toy_callbacks.StopAt): reached step 300, eval return" in proc.stdout
    results = json.loads((workdir / "run" / "results.json").read_text())
    assert (results["total_steps"], results["stopped_by"]) == (300, "callback")
    before = snapshot(workdir / "run")
    again = run_in_process(["train", "resume=run"], workdir, capsys, monkeypatch)
    assert again.returncode == 2 and "the run was stopped by callbacks[0] (tests.toy_callbacks.StopAt): reached " \
                                     "step 300; change or remove that callback (callbacks=...)" in one_line(again)
    assert snapshot(workdir / "run") == before
    on = train_in_process(["train", "resume=run", "callbacks=[]"], workdir)
    assert on.returncode == 0, on.stderr
    results = json.loads((workdir / "run" / "results.json").read_text())
    assert (results["total_steps"], results["stopped_by"], results["resumed_from_step"]) == (1000, "total_steps", 300)


def test_a_hook_that_raises_ends_the_run_in_one_line_its_checkpoints_intact(workdir):
    proc = run_cli(["train", *DQN, "total_steps=1000", "eval.every=250", "checkpoint.every=250",
                    "callbacks=[{_target_: tests.toy_callbacks.Raises, hook: on_evaluation, at_step: 500}]",
                    "hydra.run.dir=run"], cwd=workdir)
    assert proc.returncode == 1
    line = one_line(proc)
    assert line.startswith("rlexp train: error: callbacks[0] (tests.toy_callbacks.Raises).on_evaluation raised "
                           "ValueError: planned failure in on_evaluation at step 500; the last good checkpoint is ")
    assert line.endswith("step_250.pt")
    assert load_checkpoint(workdir / "run" / "checkpoints" / "step_250.pt")["step"] == 250
    assert json.loads((workdir / "run" / "results.json").read_text())["status"] == "failed"
    resumed = train_in_process(["train", "resume=run", "callbacks=[]"], workdir)   # the good checkpoint goes on
    assert resumed.returncode == 0, resumed.stderr


def test_a_saved_callback_imports_nothing_from_the_current_directory(recorded, workdir, capsys, monkeypatch):
    run = Path(shutil.copytree(recorded / "seed_0", workdir / "run", symlinks=True))
    (workdir / "planted_callback.py").write_text("raise SystemExit('imported')\n")
    final = run / "checkpoints" / "step_1000.pt"
    overrides = run / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text().replace("tests.toy_callbacks.Recorder", "planted_callback.Recorder"))
    monkeypatch.syspath_prepend(str(workdir))   # as `python -m rlexp` run in workdir has it
    before = snapshot(workdir)
    proc = run_in_process(["train", "resume=run", "total_steps=1500"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2, proc.stderr
    assert "callbacks[0] (planted_callback.Recorder), saved in" in one_line(proc)
    assert "would import 'planted_callback' from" in one_line(proc)
    assert snapshot(workdir) == before and final.exists()


def test_a_config_error_names_the_callbacks_key():
    with pytest.raises(ConfigError, match=r"^callbacks=3 must be a list"):
        build_callbacks(3)  # type: ignore[arg-type]

"""Episode budgets and stop-when-solved (rlexp/runners/stopping.py): the rules by hand, then as a user runs them."""

import json

import numpy as np
import pytest
import torch

from rlexp.runners.stopping import StopRules, StopWatch
from tests.conftest import TINY, run_cli, run_in_process, snapshot, train_in_process
from tests.test_resume import scalars


def test_the_mean_return_rule_waits_for_a_full_window_and_names_the_episode():
    watch = StopWatch(StopRules(window=3, mean_return=10.0))
    assert watch.episodes_ended(np.array([30.0, 30.0]), step=100) is None   # 2 episodes: no window yet
    assert watch.episodes_ended(np.array([-31.0]), step=150) is None        # (30 + 30 - 31) / 3 < 10
    solved = watch.episodes_ended(np.array([5.0, 40.0, 0.0]), step=200)    # windows 4/3, 14/3, then 15 >= 10
    assert (solved.step, solved.episode, solved.value) == (200, 6, 15.0) and watch.reason() == "solved"
    assert "solved at step 200 (episode 6): mean return of the last 3 training episodes 15.00" in solved.describe()
    assert watch.episodes_ended(np.array([99.0]), 250) is None and watch.episodes == 7   # solved once


def test_the_eval_rule_and_the_episode_budget():
    watch = StopWatch(StopRules(total_episodes=4, eval_return=-200.0))
    assert watch.evaluated(-250.0, 1000) is None and watch.reason() is None
    watch.episodes_ended(np.zeros(3), 1200)
    assert watch.reason() is None
    watch.episodes_ended(np.zeros(2), 1300)   # 5 >= 4: the step in which the budget is reached ends the run
    assert watch.reason() == "total_episodes" and watch.results()["solved_at_step"] is None
    assert watch.evaluated(-199.5, 1400).episode == 5 and watch.reason() == "solved"


def test_the_watch_state_round_trips():
    watch = StopWatch(StopRules(window=4, mean_return=1e9))
    watch.episodes_ended(np.arange(7, dtype=float), 10)
    copy = StopWatch(StopRules(window=4, mean_return=1e9))
    copy.load_state_dict({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in watch.state_dict().items()})
    assert list(copy.recent) == [3.0, 4.0, 5.0, 6.0] and copy.episodes == 7


def resumed(watch: StopWatch, rules: StopRules) -> StopWatch:
    """`watch` saved in a checkpoint and loaded by a run resumed with `rules`."""
    copy = StopWatch(rules)
    copy.load_state_dict({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in watch.state_dict().items()})
    return copy


def solved_by_mean(bar: float) -> StopWatch:
    watch = StopWatch(StopRules(window=2, mean_return=bar))
    for step, episodic_return in enumerate([0.0, 10.0, 20.0, 30.0, 40.0, 50.0], start=1):
        watch.episodes_ended(np.array([episodic_return]), step * 100)
        watch.evaluated(episodic_return - 5.0, step * 100)
        if watch.reason():
            break
    return watch


def test_a_looser_rule_that_the_past_meets_is_solved_where_the_past_first_met_it():
    watch = solved_by_mean(40.0)   # windows of 2: 5, 15, 25, 35, 45 -> solved at episode 6 (step 600)
    assert watch.solved.step == 600
    looser = resumed(watch, StopRules(window=2, mean_return=20.0))   # first met by episodes 3-4 (step 400: 25)
    assert (looser.solved.step, looser.solved.episode, looser.solved.value) == (400, 4, 25.0)
    assert looser.reason() == "solved" and [h.step for h in looser.history] == [600]   # the first solve kept
    results = looser.results()
    assert results["solved_at_step"] == 400 and results["solved_bar"] == 20.0 and results["solved_window"] == 2
    assert results["solved_history"] == [{"step": 600, "episode": 6, "rule": "stop.mean_return", "value": 45.0,
                                          "bar": 40.0, "window": 2}]
    # a longer window over the same past; another rule (evaluations at 100..600 scored -5, 5, 15, 25, 35, 45)
    assert resumed(watch, StopRules(window=4, mean_return=20.0)).solved.step == 500   # (10+20+30+40)/4
    by_eval = resumed(watch, StopRules(eval_return=10.0))
    assert (by_eval.solved.rule, by_eval.solved.step, by_eval.solved.value) == ("stop.eval_return", 300, 15.0)


def test_a_raised_or_removed_bar_trains_on_and_keeps_the_first_solve():
    watch = solved_by_mean(40.0)
    for rules in (StopRules(window=2, mean_return=60.0), StopRules()):
        raised = resumed(watch, rules)
        assert raised.solved is None and raised.reason() is None and len(raised.recent) == min(rules.window, 6)
        assert raised.results()["solved_at_step"] is None and raised.results()["solved_history"][0]["step"] == 600
    raised = resumed(watch, StopRules(window=2, mean_return=60.0))
    assert raised.episodes_ended(np.array([80.0]), 700).step == 700   # (50 + 80) / 2 over the kept window
    again = resumed(raised, StopRules(window=2, mean_return=60.0))   # the same rules: the same record, bit for bit
    assert again.solved == raised.solved and again.results() == raised.results()
    assert [h["bar"] for h in again.results()["solved_history"]] == [40.0]


def test_the_same_rules_keep_the_solve_and_an_old_checkpoint_keeps_its_record():
    watch = solved_by_mean(40.0)
    assert resumed(watch, StopRules(window=2, mean_return=40.0)).results() == watch.results()
    old = {k: v for k, v in watch.state_dict().items() if k not in ("rules", "history", "returns", "returns_from",
                                                                     "return_steps", "evaluations")}
    loosened = StopWatch(StopRules(window=2, mean_return=20.0))
    loosened.load_state_dict(old)   # no past to judge: the run goes on, its solve kept
    assert loosened.solved is None and loosened.results()["solved_history"][0]["step"] == 600


def test_an_episode_budget_over_three_envs_ends_in_the_step_that_reaches_it(workdir):
    proc = run_cli(["train", "algo=dqn", "env=CartPole-v1", "env.num_envs=3", "total_episodes=40",
                    "hydra.run.dir=run", *TINY], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((workdir / "run" / "results.json").read_text())
    episodes = scalars(workdir / "run")["charts/episodic_return"]
    assert results["stopped_by"] == "total_episodes" and results["episodes"] == len(episodes)
    last_step = episodes[-1][0]
    before = [step for step, _ in episodes if step < last_step]
    assert len(before) < 40 <= results["episodes"] <= len(before) + 3 and results["total_steps"] == last_step
    assert f"done: {results['episodes']} episodes at step {last_step}" in proc.stdout + proc.stderr
    assert (workdir / "run" / "checkpoints" / "final.pt").is_file()


def test_a_solved_run_ends_early_says_so_and_writes_its_final_checkpoint(workdir, capsys, monkeypatch):
    proc = train_in_process(["train", "algo=td3", "env=Pendulum-v1", "total_steps=3000", "algo.learning_starts=100",
                             "network.hidden_sizes=[32]", "stop.eval_return=-2000", "hydra.run.dir=run", *TINY],
                            workdir)   # (in process: the subject is what it says and writes)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((workdir / "run" / "results.json").read_text())
    # the first evaluation (step 200) scores above -2000 on Pendulum whatever the policy: solved there
    assert results["stopped_by"] == "solved" and results["solved_at_step"] == 200 == results["total_steps"]
    assert results["solved_by"] == "stop.eval_return" and results["solved_bar"] == -2000
    assert results["solved_history"] == []
    # the evaluation that solved it is the final one: played once, logged once
    evaluations = scalars(workdir / "run")["eval/mean_return"]
    assert evaluations == [(200, pytest.approx(results["eval_return_mean"]))]
    log = proc.stdout + proc.stderr
    assert "solved at step 200" in log and "eval return" in log
    assert (workdir / "run" / "checkpoints" / "final.pt").is_file()
    # A looser bar, which the run's evaluations already met: solved there under it, the resume refused
    before = snapshot(workdir / "run")
    looser = run_in_process(["train", "resume=run", "stop.eval_return=-3000"], workdir, capsys, monkeypatch)
    assert looser.returncode == 2 and looser.stderr.count("\n") == 1, looser.stderr
    assert "the run's past already meets the new stop rules: solved at step 200" in looser.stderr and \
        ">= stop.eval_return=-3000 (it ended solved at step 200" in looser.stderr, looser.stderr
    assert snapshot(workdir / "run") == before


# (a value refused by its range as a user types it: tests/test_errors.py's algo.gamma=2)
@pytest.mark.parametrize("override, message", [
    ("total_episodes=0", "total_episodes=0 must be a positive integer"),
    ("stop.window=0", "stop.window=0 must be a positive integer"),
    ("stop.mean_return=nan", "stop.mean_return=nan must be a finite number"),
])
def test_bad_stop_settings_are_one_line_errors(workdir, rlexp, override, message):
    proc = rlexp(["train", "algo=dqn", "env=CartPole-v1", override], cwd=workdir)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_an_eval_bar_without_evaluations_is_refused(workdir, capsys, monkeypatch):
    proc = run_in_process(["train", "algo=td3", "env=Pendulum-v1", "stop.eval_return=-200", "eval.every=0"], workdir,
                          capsys, monkeypatch)
    assert proc.returncode == 2 and "stop.eval_return=-200.0 needs evaluations during the run" in proc.stderr


def test_a_run_that_ended_early_resumes_only_with_a_new_budget_or_bar(workdir, capsys, monkeypatch):
    args = ["train", "algo=dqn", "env=CartPole-v1", "total_episodes=20", "hydra.run.dir=run", *TINY]
    assert train_in_process(args, workdir).returncode == 0   # (the resume as typed is the subject)
    refused = run_in_process(["train", "resume=run"], workdir, capsys, monkeypatch)
    assert refused.returncode == 2 and "pass a larger total_episodes to extend it" in refused.stderr
    extended = run_cli(["train", "resume=run", "total_episodes=30"], cwd=workdir)
    assert extended.returncode == 0, extended.stderr
    results = json.loads((workdir / "run" / "results.json").read_text())
    assert results["stopped_by"] == "total_episodes" and 30 <= results["episodes"] == len(
        scalars(workdir / "run")["charts/episodic_return"])

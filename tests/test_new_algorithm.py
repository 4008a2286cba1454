"""Adding an algorithm is its agent module and its YAML, nothing else: a toy algorithm dropped into a copy of the
package trains from the CLI, checkpoints, resumes and evaluates, and its seeds as one model are refused in one
line (it has no `members` builder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

#: A linear Q-learner with epsilon-greedy exploration: the least an off-policy agent is.
TOY_AGENT = '''
"""A toy: one-step Q-learning with a linear Q-function (a test's algorithm)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import MISSING
from torch import Tensor, nn

from rlexp.agents.base import BuildContext, obs_tensor
from rlexp.config.checks import check_range
from rlexp.config.actions import ActionKind
from rlexp.config.registry import AlgoSpec, Family, count_parameters
from rlexp.config.schema import OffPolicyConfig
from rlexp.envs.spaces import SpaceInfo
from rlexp.networks.deterministic import DeterministicPolicy
from rlexp.replay import ReplayBatch


class Toy:
    exploration_state = ("rng",)

    def __init__(self, obs_dim: int, n_actions: int, lr: float, epsilon: float, seed: int) -> None:
        self.q = nn.Linear(obs_dim, n_actions)
        self.optimizer = torch.optim.SGD(self.q.parameters(), lr=lr)
        self.epsilon, self.n_actions = epsilon, n_actions
        self.rng = np.random.default_rng(seed)

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool, step: int = 0) -> np.ndarray:
        actions = self.q(obs_tensor(obs, torch.device("cpu"))).argmax(-1).numpy()
        if explore:
            random = self.rng.random(len(actions)) < self.epsilon
            actions[random] = self.rng.integers(self.n_actions, size=int(random.sum()))
        return actions

    def update(self, batch: ReplayBatch) -> dict[str, Tensor]:
        with torch.no_grad():
            target = batch.rewards + batch.discounts * self.q(batch.next_observations).max(-1).values
        q = self.q(batch.observations).gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        loss = ((q - target) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"losses/td_loss": loss.detach()}

    def episodes_started(self, envs: np.ndarray) -> None:
        pass

    def exploration_metrics(self, step: int) -> dict[str, float]:
        return {"charts/epsilon": self.epsilon}

    def representation(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        return observations, self.q(observations).max(-1).values

    def policy_network(self) -> nn.Module:
        return DeterministicPolicy(self.q, greedy=True)

    def state_dict(self) -> dict[str, Any]:
        return {"q": self.q.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": torch.as_tensor(np.frombuffer(json.dumps(self.rng.bit_generator.state).encode(), np.uint8))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q.load_state_dict(state["q"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = json.loads(bytes(state["rng"].numpy()).decode())


@dataclass
class ToyConfig(OffPolicyConfig):
    lr: float = MISSING
    epsilon: float = MISSING


def check(algo: dict[str, Any], cfg: dict[str, Any]) -> None:
    check_range("algo.epsilon", algo["epsilon"], 0.0, 1.0)


def build(algo: ToyConfig, context: BuildContext) -> Toy:
    return Toy(context.spaces.obs_dim, context.spaces.n_actions, algo.lr, algo.epsilon, context.seed)


def parameters(algo: ToyConfig, spaces: SpaceInfo, hidden_sizes: tuple[int, ...], torso: Any = None) -> int:
    # (torso: network.torso's module, for algorithms whose networks read observations through it)
    return count_parameters(nn.Linear(spaces.obs_dim, spaces.n_actions))


ALGORITHM = AlgoSpec(name="toy", family=Family.OFF_POLICY, schema=ToyConfig, check=check, build=build,
                     parameters=parameters, actions=frozenset({ActionKind.DISCRETE}))
'''

TOY_YAML = """defaults:
  - /toy_schema@_here_
  - _self_

name: toy
gamma: 0.99
lr: 0.01
epsilon: 0.1
batch_size: 32
buffer_size: 10000
learning_starts: 100
train_freq: 1
train_freq_unit: step
gradient_steps: 1
n_step: 1
"""


#: The commands of the test, run one after another in one interpreter of the copy (tests/conftest.py's in-process
#: entry point, as the suite runs commands whose first test is a subprocess): [exit code, stdout, stderr] each.
DRIVER = r"""
import contextlib, io, json, sys
import pytest
from tests.conftest import _main_in_process

results = []
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        results.append([_main_in_process(args, monkeypatch), out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def test_an_algorithm_is_its_module_and_its_yaml(tmp_path: Path) -> None:
    # A copy of the package and its config tree, with the toy's two files added and nothing else changed.
    # (the compiled modules too: copytree keeps the sources' times, which is what Python checks a .pyc against, so
    # the copy's process does not compile the whole package again)
    shutil.copytree(ROOT / "rlexp", tmp_path / "rlexp")
    shutil.copytree(ROOT / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "rlexp" / "agents" / "toy.py").write_text(TOY_AGENT)
    (tmp_path / "conf" / "algo" / "toy.yaml").write_text(TOY_YAML)
    # (the copy first: its rlexp is what runs; the tests package, for the driver, from the checkout)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    common = ["algo=toy", "env=CartPole-v1", "eval.every=200", "eval.episodes=2", "checkpoint.every=200",
              "log.progress=none", "torch_threads=1"]
    commands = [["train", *common, "total_steps=400", "hydra.run.dir=run"],
                ["train", "resume=run", "total_steps=600"],
                ["eval", "run", "episodes=2"],
                ["train", *common, "total_steps=400", "seeds=[0,1]", "hydra.run.dir=batch"],
                # its action kind is checked from its registry entry, as every algorithm's
                ["train", "algo=toy", "env=Pendulum-v1", "hydra.run.dir=wrong"]]
    driven = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(commands)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert driven.returncode == 0, driven.stderr
    (trained, extended, evaluated, refused, wrong) = [
        subprocess.CompletedProcess(args, code, out, err)
        for args, (code, out, err) in zip(commands, json.loads(driven.stdout.strip().splitlines()[-1]))]

    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "rlexp" / "agents" / "toy.py").is_file()   # (the copy, not the installed package, ran)
    assert (tmp_path / "run" / "checkpoints" / "final.pt").is_file()
    assert "toy on CartPole-v1" in trained.stdout + trained.stderr
    assert extended.returncode == 0, extended.stderr
    assert json.loads((tmp_path / "run" / "results.json").read_text())["total_steps"] == 600
    assert evaluated.returncode == 0, evaluated.stderr

    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "rlexp train: error: seeds=[...] trains many seeds as one model for a2c, crossq, ddpg, dqn, ppo, qrdqn, "
        "rainbow, sac, td3, tqc so far, not toy; run its seeds one process each: rlexp train --multirun seed=0,1"]
    assert wrong.returncode == 2
    assert "algo=toy needs a discrete action space" in wrong.stderr
    assert ("use algo=a2c, algo=crossq, algo=ddpg, algo=ppo, algo=sac, algo=td3 or algo=tqc for "
            "continuous actions") in wrong.stderr

"""The DDPG paper's details as switches, and experiment=ddpg_paper that turns them all on."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlexp.agents import ddpg
from rlexp.agents.actor_critic import TD3
from rlexp.agents.base import BuildContext
from rlexp.commands.train import resolved_config
from rlexp.envs import describe_spaces
from rlexp.networks.actor_critic import Actor, CriticEnsemble
from rlexp.networks.targets import polyak_update
from tests.conftest import TINY, algo_config, compose_config, run_cli

CPU = torch.device("cpu")


def paper_ddpg(hidden_sizes=(400, 300)) -> TD3:
    """DDPG as its builder makes it, with the paper's switches on (3-D observations, actions in [-2, 2])."""
    algo = dict(actor_lr=1e-4, critic_lr=1e-3, tau=1e-3, critic_weight_decay=1e-2, batch_norm=True,
                critic_action_layer=1, final_layer_init=3e-3, noise={"type": "ou", "sigma": 0.2, "theta": 0.15})
    spaces = describe_spaces(gym.spaces.Box(-10.0, 10.0, (3,), np.float32), gym.spaces.Box(-2.0, 2.0, (1,), np.float32),
                             "Test-v0")
    return ddpg.build(algo_config(ddpg.DDPGConfig, algo), BuildContext(
        spaces=spaces, hidden_sizes=tuple(hidden_sizes), total_steps=1000, planned_updates=1000, num_envs=1,
        device=CPU, seed=0))


def test_final_layers_start_in_the_small_interval_and_hidden_layers_fan_in_uniform():
    torch.manual_seed(0)
    actor = Actor(3, np.array([-1.0]), np.array([1.0]), [400, 300], final_layer_init=3e-3)
    critic = CriticEnsemble(3, 1, [400, 300], 1, action_layer=1, final_layer_init=3e-3)
    for final in (actor.net[-1].weight, actor.net[-1].bias, critic.layers[-1].weight, critic.layers[-1].bias):
        assert final.abs().max() <= 3e-3
    for final in (actor.net[-1].weight, critic.layers[-1].weight):  # 300 values each: some near the bound
        assert final.abs().max() > 2.5e-3
    hidden = critic.layers[1].weight  # fan-in 400 + 1 (the action enters here): bound 1/sqrt(401)
    assert hidden.abs().max() <= 1 / np.sqrt(401) and hidden.abs().max() > 0.9 / np.sqrt(401)


def test_the_action_enters_the_critic_at_its_second_layer():
    critic = CriticEnsemble(3, 2, [400, 300], 2, action_layer=1)
    assert critic.layers[0].weight.shape == (2, 3, 400)          # the state alone
    assert critic.layers[1].weight.shape == (2, 400 + 2, 300)    # the first layer's output and the action
    q = critic(torch.randn(5, 3), torch.randn(5, 2))
    assert q.shape == (2, 5)
    torch.testing.assert_close(critic.q1(torch.ones(4, 3), torch.zeros(4, 2)), critic(torch.ones(4, 3),
                                                                                     torch.zeros(4, 2))[0])


def test_batch_norm_normalizes_each_critic_with_its_own_statistics_before_the_action():
    critic = CriticEnsemble(3, 1, [16, 16], 2, action_layer=1, batch_norm=True)
    assert [n.num_features for n in critic.norms] == [2 * 3, 2 * 16]  # state input, first layer: per critic
    critic(torch.randn(64, 3) * 5 + 3, torch.randn(64, 1))
    mean = critic.norms[0].running_mean.view(2, 3)
    torch.testing.assert_close(mean[0], mean[1])  # both critics saw the same states
    assert mean.abs().min() > 0.1  # and moved their running mean towards 3


def test_weight_decay_reaches_the_critic_only():
    agent = paper_ddpg()
    assert agent.critic_optimizer.param_groups[0]["weight_decay"] == 1e-2
    assert agent.actor_optimizer.param_groups[0]["weight_decay"] == 0.0


def test_a_batch_normalized_agent_acts_on_single_observations_and_updates_on_batches():
    from rlexp.replay import ReplayBatch

    agent = paper_ddpg(hidden_sizes=[16, 16])
    action = agent.act(np.zeros(3, np.float32)[None], explore=True)[0]
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0
    terminations = torch.zeros(8)
    batch = ReplayBatch(torch.randn(8, 3), torch.rand(8, 1) * 4 - 2, torch.randn(8), torch.randn(8, 3),
                        0.99 * (1 - terminations), torch.arange(8))
    metrics = agent.update(batch)
    assert all(torch.isfinite(v) for v in metrics.values())
    assert agent.actor.training and not agent.actor_target.training and not agent.critic_target.training


def test_target_updates_copy_the_running_statistics():
    online = Actor(3, np.array([-1.0]), np.array([1.0]), [8], batch_norm=True)
    target = Actor(3, np.array([-1.0]), np.array([1.0]), [8], batch_norm=True)
    online(torch.randn(32, 3) + 4)  # train mode: running statistics move
    polyak_update(target, online, 0.001)
    torch.testing.assert_close(target.net[0].running_mean, online.net[0].running_mean)
    assert not torch.equal(target.net[1].weight, online.net[1].weight)  # weights only move by tau


def test_the_experiment_config_is_the_papers_setup():
    cfg = resolved_config(compose_config(["experiment=ddpg_paper", "env=Pendulum-v1"]))
    algo = cfg["algo"]
    assert algo["name"] == "ddpg" and cfg["network"]["hidden_sizes"] == [400, 300]
    assert (algo["actor_lr"], algo["critic_lr"], algo["critic_weight_decay"], algo["tau"], algo["batch_size"]) == \
        (1e-4, 1e-3, 1e-2, 1e-3, 64)
    assert algo["gamma"] == 0.99  # the paper's, over the Pendulum preset's 0.98
    assert algo["batch_norm"] and algo["critic_action_layer"] == 1 and algo["final_layer_init"] == 3e-3
    assert algo["noise"] == {"type": "ou", "sigma": 0.2, "theta": 0.15}
    default = resolved_config(compose_config(["algo=ddpg", "env=Pendulum-v1"]))["algo"]
    assert not default["batch_norm"] and default["critic_action_layer"] == 0 and default["noise"]["type"] == "gaussian"


@pytest.mark.parametrize("bad, message", [("algo.critic_action_layer=3", "algo.critic_action_layer=3 must be a layer"),
                                          ("algo.critic_weight_decay=-1", "algo.critic_weight_decay=-1.0 is outside")])
def test_bad_paper_switches_are_refused(bad, message):
    from rlexp.agents.registry import algorithms
    from rlexp.config.validate import validate
    from rlexp.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate(resolved_config(compose_config(["algo=ddpg", "env=Pendulum-v1", bad])), algorithms())


def test_experiment_ddpg_paper_trains_from_the_command_line(workdir):
    proc = run_cli(["train", "experiment=ddpg_paper", "env=Pendulum-v1", "total_steps=400",
                    "network.hidden_sizes=[32,24]", "hydra.run.dir=run", *TINY], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    agent = torch.load(workdir / "run" / "checkpoints" / "final.pt", weights_only=True)["agent"]
    assert "norms.0.running_mean" in agent["critic"] and agent["critic"]["layers.1.weight"].shape == (1, 32 + 1, 24)

import numpy as np
import torch

from rlexp.networks.actor_critic import Actor, CriticEnsemble
from rlexp.networks.q import QNetwork
from rlexp.networks.targets import polyak_update
from rlexp.networks.torsos import mlp


def test_mlp_and_q_network_shapes():
    net = mlp(4, [8, 16], 3)
    assert [m.out_features for m in net if isinstance(m, torch.nn.Linear)] == [8, 16, 3]
    assert QNetwork(4, 2, [32])(torch.zeros(5, 4)).shape == (5, 2)


def test_actor_stays_inside_asymmetric_bounds():
    torch.manual_seed(0)
    actor = Actor(3, np.array([-1.0, 0.0]), np.array([3.0, 0.5]), [16])
    with torch.no_grad():
        for layer in actor.net:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(100)  # saturate tanh
        actions = actor(torch.randn(1000, 3) * 10)
    assert torch.all(actions[:, 0] >= -1.0) and torch.all(actions[:, 0] <= 3.0)
    assert torch.all(actions[:, 1] >= 0.0) and torch.all(actions[:, 1] <= 0.5)
    assert actions[:, 0].min() < -0.9 and actions[:, 0].max() > 2.9  # the whole range is reachable


def test_critic_ensemble_members_are_independent_mlps():
    torch.manual_seed(0)
    critics = CriticEnsemble(3, 2, [8, 8], n_critics=2)
    obs, act = torch.randn(5, 3), torch.randn(5, 2)
    q = critics(obs, act)
    assert q.shape == (2, 5)
    for i in range(2):  # recompute member i by hand, layer by layer
        x = torch.cat([obs, act], dim=1)
        for j, layer in enumerate(critics.layers):
            x = x @ layer.weight[i] + layer.bias[i]
            if j < len(critics.layers) - 1:
                x = torch.relu(x)
        torch.testing.assert_close(q[i], x.squeeze(-1))
    torch.testing.assert_close(critics.q1(obs, act), q[0])
    assert not torch.allclose(q[0], q[1])  # members are initialised differently


def test_polyak_update_soft_and_hard():
    online, target = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        online.weight.fill_(1.0), online.bias.fill_(1.0)
        target.weight.fill_(0.0), target.bias.fill_(-1.0)
    polyak_update(target, online, tau=0.25)
    torch.testing.assert_close(target.weight, torch.full((1, 2), 0.25))   # 0.25*1 + 0.75*0
    torch.testing.assert_close(target.bias, torch.full((1,), -0.5))       # 0.25*1 + 0.75*(-1)
    polyak_update(target, online, tau=1.0)
    torch.testing.assert_close(target.weight, online.weight)


# --- the on-policy actor-critic ------------------------------------------------------------------------------------

def test_categorical_policy_log_probabilities_and_entropy_match_torch():
    from rlexp.networks.policies import ActorCriticPolicy

    torch.manual_seed(0)
    policy = ActorCriticPolicy(4, [16, 16], "tanh", n_actions=3)
    obs = torch.randn(5, 4)
    actions, log_prob, value = policy.sample(obs, torch.Generator().manual_seed(1))
    reference = torch.distributions.Categorical(logits=policy.policy_output(obs))
    torch.testing.assert_close(log_prob, reference.log_prob(actions))
    log_prob2, entropy, value2 = policy.evaluate(obs, actions)
    torch.testing.assert_close(log_prob2, log_prob)
    torch.testing.assert_close(entropy, reference.entropy())
    torch.testing.assert_close(value2, value)
    assert value.shape == (5,) and policy.deterministic(obs).tolist() == policy.policy_output(obs).argmax(-1).tolist()


def test_gaussian_policy_has_a_state_independent_log_std_and_torchs_log_probabilities():
    from rlexp.networks.policies import ActorCriticPolicy

    torch.manual_seed(0)
    policy = ActorCriticPolicy(3, [16], "relu", action_dim=2, log_std_init=-0.5)
    obs = torch.randn(6, 3)
    actions, log_prob, _ = policy.sample(obs, torch.Generator().manual_seed(1))
    std = policy.log_std.exp().expand(6, 2)
    reference = torch.distributions.Normal(policy.policy_output(obs), std)
    torch.testing.assert_close(log_prob, reference.log_prob(actions).sum(-1))
    _, entropy, _ = policy.evaluate(obs, actions)
    torch.testing.assert_close(entropy, reference.entropy().sum(-1))
    torch.testing.assert_close(policy.log_std.detach(), torch.full((2,), -0.5))


def test_the_same_generator_state_gives_the_same_draws_and_the_output_layers_start_small():
    from rlexp.networks.policies import ActorCriticPolicy

    torch.manual_seed(0)
    policy = ActorCriticPolicy(4, [64, 64], "tanh", n_actions=2)
    obs = torch.randn(100, 4)
    a = policy.sample(obs, torch.Generator().manual_seed(7))[0]
    b = policy.sample(obs, torch.Generator().manual_seed(7))[0]
    assert torch.equal(a, b)
    assert policy.policy_output(obs).abs().max() < 0.2     # gain 0.01: the first policy is near uniform


def test_the_policy_and_value_mlps_share_nothing_though_computed_as_one_batched_module():
    from rlexp.networks.policies import POLICY, VALUE, ActorCriticPolicy

    torch.manual_seed(0)
    policy = ActorCriticPolicy(4, [16, 16], "tanh", n_actions=3)
    obs = torch.randn(7, 4)

    def mlp_of(member: int, head: torch.nn.Linear):   # the member's layers as a plain MLP
        layers = []
        for layer in policy.hidden:
            linear = torch.nn.Linear(*layer.weight.shape[1:])
            linear.weight.data, linear.bias.data = layer.weight[member].T, layer.bias[member, 0]
            layers += [linear, torch.nn.Tanh()]
        return torch.nn.Sequential(*layers, head)

    logits, values = policy(obs)
    torch.testing.assert_close(logits, mlp_of(POLICY, policy.policy_head)(obs))
    torch.testing.assert_close(values, mlp_of(VALUE, policy.value_head)(obs).squeeze(-1))
    values.sum().backward()   # the value loss moves the value's member only
    for layer in policy.hidden:
        assert layer.weight.grad[POLICY].abs().max() == 0 and layer.weight.grad[VALUE].abs().max() > 0
    assert policy.policy_head.weight.grad is None
    square = policy.hidden[1].weight[POLICY]   # orthogonal init, gain sqrt(2): W^T W = 2 I
    torch.testing.assert_close(square.T @ square, 2 * torch.eye(16), atol=1e-5, rtol=0)

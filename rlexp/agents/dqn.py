"""Deep Q-Network: Mnih et al. 2015, "Human-level control through deep reinforcement learning".

https://www.nature.com/articles/nature14236

With its improvements, each one switch: double Q-learning (van Hasselt et al. 2016, https://arxiv.org/abs/1509.06461),
the dueling architecture (Wang et al. 2016, https://arxiv.org/abs/1511.06581), n-step returns (computed by the replay
memory), prioritized replay (Schaul et al. 2016, https://arxiv.org/abs/1511.05952: the replay samples and weighs,
the agent reports the new priorities through `report_td_errors`), noisy networks (Fortunato et al. 2018,
https://arxiv.org/abs/1706.10295: exploration by perturbed weights instead of epsilon-greedy) and a distributional
value (C51, Bellemare et al. 2017; QR-DQN, Dabney et al. 2018: rlexp/agents/distributional.py). All six together are
Rainbow (Hessel et al. 2018, https://arxiv.org/abs/1710.02298): `algo=rainbow`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import MISSING
from torch import Tensor, nn

from rlexp.agents.base import (
    BuildContext,
    features,
    fork_global_generator,
    input_of,
    learning_rates,
    load_state,
    make_adam,
    obs_tensor,
    observation_encoder,
    rebound,
    set_learning_rates,
    share_settings,
    state_of,
)
from rlexp.agents.distributional import CategoricalReturn, ExpectedReturn, QuantileReturn, ReturnDistribution
from rlexp.agents.exploration import rng_state, set_rng_state
from rlexp.config.actions import ActionKind
from rlexp.config.checks import check_positive, check_positive_int, check_range, check_schedule_span, check_tau
from rlexp.config.registry import AlgoSpec, Family, count_parameters
from rlexp.config.schema import Choice, LrSchedule, OffPolicyConfig
from rlexp.envs.spaces import SpaceInfo
from rlexp.errors import ConfigError
from rlexp.networks.deterministic import DeterministicPolicy
from rlexp.networks.encoders import ObservationEncoder
from rlexp.networks.members import MemberOptimizers, clip_grad_norm_per_member, stack_members
from rlexp.networks.noisy import clear_noise, sample_noise
from rlexp.networks.q import CategoricalHead, DuelingQNetwork, QNetwork, QuantileHead, ValueHead, linear_layer
from rlexp.networks.targets import polyak_update
from rlexp.networks.user_torso import Torso
from rlexp.replay import PrioritizedReplayBuffer, ReplayBatch
from rlexp.schedules import LinearSchedule


class DQN:
    """Q-learning with a target network, epsilon-greedy exploration, a Huber (or squared) loss and gradient
    clipping; optionally double Q-learning targets, a dueling Q-network, noisy layers (`noisy_sigma`: sigma0; they
    turn epsilon-greedy off) and a distributional value (`head`: C51's categorical or QR-DQN's quantiles)."""

    def __init__(self, obs_dim: int, n_actions: int, *, hidden_sizes: Sequence[int], lr: float, tau: float,
                 target_update_interval: int, exploration_fraction: float, exploration_initial_eps: float,
                 exploration_final_eps: float, max_grad_norm: float, lr_schedule: str, double: bool = False,
                 dueling: bool = False, loss: str = "huber", total_steps: int, total_updates: int,
                 device: torch.device, rng: np.random.Generator,
                 report_td_errors: Callable[[Tensor, Tensor], object] | None = None,
                 image_shape: tuple[int, ...] | None = None, activation: str = "relu",
                 encoder: nn.Module | None = None, head: ValueHead | None = None,
                 noisy_sigma: float | None = None, adam_eps: float = 1e-8) -> None:
        self.n_actions = n_actions
        self.double = double
        self.report_td_errors = report_td_errors
        self.tau = tau
        self.target_update_interval = target_update_interval
        self.max_grad_norm = max_grad_norm
        self.device = device
        self.rng = rng
        # Noisy networks explore through their weights: epsilon-greedy is off (Rainbow's epsilon of 0).
        self.noisy = noisy_sigma is not None
        self.epsilon = LinearSchedule(0.0, 0.0, 1) if self.noisy else \
            LinearSchedule(exploration_initial_eps, exploration_final_eps, int(exploration_fraction * total_steps))

        network = DuelingQNetwork if dueling else QNetwork
        # `image_shape` (env.atari's stacked frames): the Nature CNN instead of the MLP.
        # `encoder`: the observations to `obs_dim` features (rlexp/networks/encoders.py; q_torso)
        self.q_network = network(obs_dim, n_actions, hidden_sizes, image_shape, activation, encoder, head,
                                 linear_layer(noisy_sigma)).to(device)
        self.target_network = copy.deepcopy(self.q_network).requires_grad_(False)
        self.returns = return_distribution(self.q_network.head, loss)
        # the noise of the noisy layers, from the agent's own generator (a members agent: each member's)
        self.generator: torch.Generator | list[torch.Generator] = fork_global_generator(device)
        self.optimizer = make_adam(self.q_network.parameters(), lr, device, eps=adam_eps)
        # `linear` anneals the learning rate to 0 over the planned updates: late updates only fine-tune.
        self.learning_rates = learning_rates([self.optimizer], lr_schedule, total_updates)
        self.n_updates = 0

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool, step: int = 0) -> np.ndarray:
        """Greedy actions for the batch; exploring, each env takes a uniformly random action with probability
        epsilon, drawn for each env (noisy networks: greedy through freshly perturbed weights)."""
        self.perturb(explore)
        actions = self.greedy_actions(obs_tensor(obs, self.device)).cpu().numpy()
        return self.explore(actions, step) if explore else actions

    def perturb(self, explore: bool) -> None:
        """Noisy networks: new noise in the Q-network to explore with, none (its mean weights) otherwise."""
        if self.noisy:
            if explore:
                sample_noise(self.q_network, self.generator)
            else:
                clear_noise(self.q_network)

    @torch.no_grad()
    def greedy_actions(self, observations: Tensor) -> Tensor:
        """argmax_a Q(s, a) for a batch (leading axes kept)."""
        return self.q_network(observations).argmax(dim=-1)

    def explore(self, actions: np.ndarray, step: int) -> np.ndarray:
        """Epsilon-greedy: each env's greedy action replaced by a uniformly random one with probability epsilon."""
        random = self.rng.random(len(actions)) < self.epsilon(step)
        if random.any():
            actions[random] = self.rng.integers(self.n_actions, size=int(random.sum()))
        return actions

    @torch.no_grad()
    def td_target(self, batch: ReplayBatch) -> Tensor:
        """The target network's outputs at (s', a*) through the Bellman operator: y = r + gamma * (1 - terminated)
        * Q_target(s', a*) for the expected value (rlexp/agents/distributional.py: the distributions'), no bootstrap
        past a true termination, where a* = argmax_a' Q_target(s', a') (DQN) or argmax_a' Q(s', a') (double DQN:
        the online network picks the action, the target network values it, which removes the max operator's
        overestimation). Every reduction is over the last axes, so a batch with a leading member axis (many
        seeds, DQNMembers) gives each member's."""
        next_outputs = self.target_network.outputs(batch.next_observations)
        next_q = self.q_network(batch.next_observations) if self.double else \
            self.target_network.head.q_values(next_outputs)
        return self.returns.target(batch, at_actions(next_outputs, next_q.argmax(dim=-1)))

    def td_gradients(self, batch: ReplayBatch) -> tuple[Tensor, Tensor, Tensor]:
        """The TD loss and its gradients: (the loss, Q(s, a), the errors prioritized replay weighs by), detached.
        A pure function of the batch and the networks (what `compile=` compiles)."""
        td_target = self.td_target(batch)
        outputs = at_actions(self.q_network.outputs(batch.observations), batch.actions)
        elementwise, errors = self.returns.loss(outputs, td_target)
        # Prioritized replay: importance-sampling weights correct the bias of non-uniform sampling.
        td_loss = (elementwise * batch.weights).mean(-1) if batch.weights is not None else elementwise.mean(-1)
        td_loss.sum().backward()   # (a sum over members: each member's gradient is its own loss's)
        return td_loss.detach(), self.q_network.head.q_values(outputs).detach(), errors

    def update(self, batch: ReplayBatch) -> dict[str, Tensor]:
        set_learning_rates(self.learning_rates, self.n_updates)
        if self.noisy:   # independent noise for the online and the target network (Fortunato et al. 2018, Alg. 1)
            sample_noise(self.q_network, self.generator)
            sample_noise(self.target_network, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        td_loss, q_values, td_errors = self.td_gradients(batch)
        if self.report_td_errors is not None:
            self.report_td_errors(batch.indices, td_errors)
        grad_norm = self.clip_gradients()
        self.optimizer.step()

        self.n_updates += 1
        if self.n_updates % self.target_update_interval == 0:
            polyak_update(self.target_network, self.q_network, self.tau)
        return {"losses/td_loss": td_loss, "losses/q_values": q_values.mean(-1), "losses/grad_norm": grad_norm.detach()}

    #: the methods `compile=` compiles (rlexp/agents/compiled.py)
    compiled = ("td_gradients", "greedy_actions")

    def clip_gradients(self) -> Tensor:
        return torch.nn.utils.clip_grad_norm_(self.q_network.parameters(), self.max_grad_norm, foreach=True)

    def episodes_started(self, envs: np.ndarray) -> None:
        """Epsilon-greedy keeps no per-episode state."""

    def exploration_metrics(self, step: int) -> dict[str, float]:
        return {"charts/epsilon": self.epsilon(step)}

    def representation(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        """The Q-network's last hidden layer (the value stream's, dueling) and max_a Q(s, a), of its mean
        weights (noisy networks)."""
        clear_noise(self.q_network)
        network = self.q_network
        head = network.net[-1] if isinstance(network, QNetwork) else \
            (network.value[-1] if isinstance(network.value, nn.Sequential) else network.value)
        features, q_values = input_of(head, lambda: network(observations))
        return features, q_values.max(dim=-1).values

    def policy_network(self) -> nn.Module:
        clear_noise(self.q_network)   # the mean weights: a deterministic policy
        return DeterministicPolicy(self.q_network, greedy=True)

    #: What a checkpoint holds of this agent (with the update counter and the exploration generators).
    checkpointed = ("q_network", "target_network", "optimizer")
    exploration_state: tuple[str, ...] = ("rng", "generator")   # epsilon-greedy's generator, the noisy layers'

    def state_dict(self) -> dict[str, Any]:
        assert isinstance(self.generator, torch.Generator)   # a single run's agent (members save their own)
        noise = {"generator": self.generator.get_state()} if self.noisy else {}
        return {**state_of(self, self.checkpointed), "rng": rng_state(self.rng), **noise}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_state(self, self.checkpointed, state)
        set_rng_state(self.rng, state["rng"])
        if self.noisy:
            assert isinstance(self.generator, torch.Generator)
            self.generator.set_state(state["generator"])


def at_actions(outputs: Tensor, actions: Tensor) -> Tensor:
    """(..., batch, actions, atoms) outputs at the (..., batch) actions: (..., batch, atoms)."""
    index = actions.unsqueeze(-1).unsqueeze(-1).expand(*actions.shape, 1, outputs.shape[-1])
    return outputs.gather(-2, index).squeeze(-2)


def return_distribution(head: ValueHead, loss: str) -> ReturnDistribution:
    """What the agent learns of the return, for the Q-network's value head."""
    if isinstance(head, CategoricalHead):
        return CategoricalReturn(head.support)
    if isinstance(head, QuantileHead):
        return QuantileReturn()
    return ExpectedReturn(loss)


class DQNMembers(DQN):
    """N seeds' DQN agents learning as one: their Q-networks and targets stacked on a member axis
    (rlexp/networks/members.py), one Adam over the stacked parameters (elementwise, so each member's moments are
    its own), gradients clipped per member. Batches and observations carry the member axis in front; each member
    keeps its own exploration generator and replay, and its own agent object (`members[k]`), whose parameters and
    optimizer state are its slices of the stacked ones: it evaluates and checkpoints as a single run's agent."""

    def __init__(self, members: Sequence[DQN]) -> None:
        first = members[0]
        share_settings(self, first)
        self.members = list(members)
        self.q_network = stack_members([m.q_network for m in members], "the Q-network")
        self.target_network = stack_members([m.target_network for m in members], "the Q-network")
        self.target_network.requires_grad_(False)
        self.optimizer = make_adam(self.q_network.parameters(), first.optimizer.param_groups[0]["lr"], self.device)
        self.learning_rates = rebound(first.learning_rates, [self.optimizer])
        self._params = list(self.q_network.parameters())
        self._optimizers = MemberOptimizers([(self.optimizer, self._params, "optimizer")], members)
        # every member's replay is prioritized, or none is (the members are built alike)
        reporters = [m.report_td_errors for m in members if m.report_td_errors is not None]
        self.report_td_errors = None if first.report_td_errors is None else \
            lambda indices, errors: [r(i, e) for r, i, e in zip(reporters, indices, errors)]
        # each member's noise from its own generator (the members are single runs' agents: one generator each)
        self.generator = [m.generator for m in members if isinstance(m.generator, torch.Generator)]

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool, step: int = 0) -> np.ndarray:
        """(members, envs, ...) observations -> (members, envs) actions, each member exploring with its own
        generator."""
        self.perturb(explore)
        actions = self.greedy_actions(obs_tensor(obs, self.device)).cpu().numpy()
        if explore:
            for member, member_actions in zip(self.members, actions):
                member.explore(member_actions, step)
        return actions

    def update(self, batch: ReplayBatch) -> dict[str, Tensor]:
        metrics = super().update(batch)
        self._optimizers.stepped(self.n_updates)
        return metrics

    def clip_gradients(self) -> Tensor:
        return clip_grad_norm_per_member(self._params, self.max_grad_norm, len(self.members))


# --- its config, checks and builder ------------------------------------------------------------------------

class Loss(Choice):
    huber = "huber"
    mse = "mse"


class Distribution(Choice):
    expected = "expected"         # DQN: Q(s, a), the expected return
    categorical = "categorical"   # C51 (Bellemare et al. 2017)
    quantile = "quantile"         # QR-DQN (Dabney et al. 2018)


@dataclass
class DQNConfig(OffPolicyConfig):
    tau: float = MISSING
    """target network update: 1.0 = hard copy (the paper), < 1 = Polyak averaging"""
    lr: float = MISSING
    """Adam's learning rate"""
    lr_schedule: LrSchedule = MISSING
    """constant | linear (annealed to 0 over the run's updates)"""
    target_update_interval: int = MISSING
    """gradient updates between target-network updates"""
    exploration_fraction: float = MISSING
    """share of total_steps over which epsilon anneals linearly"""
    exploration_initial_eps: float = MISSING
    """epsilon at the start"""
    exploration_final_eps: float = MISSING
    """epsilon once annealed"""
    max_grad_norm: Optional[float] = MISSING
    """the gradient norm is clipped to this (null: not clipped, sb3-contrib's QR-DQN default)"""
    loss: Loss = MISSING
    """huber (the paper's error clipping) | mse"""
    double: bool = MISSING
    """double Q-learning targets (van Hasselt et al. 2016)"""
    dueling: bool = MISSING
    """dueling value/advantage heads (Wang et al. 2016)"""
    noisy: bool = MISSING
    """noisy networks (Fortunato et al. 2018): factorised Gaussian noise in the fully connected layers; epsilon-greedy
    off"""
    noisy_sigma: float = MISSING
    """sigma0: each noisy layer's initial noise scale is sigma0 / sqrt(its inputs)"""
    distribution: Distribution = MISSING
    """what is learned of the return: expected (DQN) | categorical (C51) | quantile (QR-DQN)"""
    atoms: int = MISSING
    """categorical: the support's atoms (C51's N)"""
    v_min: float = MISSING
    """categorical: the support's lowest return"""
    v_max: float = MISSING
    """categorical: the support's highest return"""
    quantiles: int = MISSING
    """quantile: how many quantiles (QR-DQN's N)"""
    adam_eps: float = MISSING
    """Adam's epsilon (Rainbow: 1.5e-4, where Adam's default is 1e-8)"""


def check(algo: dict[str, Any], cfg: dict[str, Any]) -> None:
    check_schedule_span(algo, "algo.lr_schedule=linear" if algo["lr_schedule"] != "constant" else
                        "algo.prioritized's beta annealing" if algo["prioritized"] else None)
    check_tau(algo)
    check_positive(algo, "lr", *(["max_grad_norm"] if algo["max_grad_norm"] is not None else []))
    check_positive_int("algo.target_update_interval", algo["target_update_interval"])
    check_range("algo.exploration_fraction", algo["exploration_fraction"], 0.0, 1.0)
    check_range("algo.exploration_initial_eps", algo["exploration_initial_eps"], 0.0, 1.0)
    check_range("algo.exploration_final_eps", algo["exploration_final_eps"], 0.0, 1.0)
    check_positive(algo, "noisy_sigma", "adam_eps")
    distribution = algo["distribution"]
    if distribution != "expected" and algo["loss"] != "huber":
        raise ConfigError(f"algo.loss={algo['loss']} is the expected value's loss, and algo.distribution="
                          f"{distribution} learns by its own ({DISTRIBUTION_LOSS[distribution]}); leave algo.loss "
                          f"at huber or set algo.distribution=expected")
    # (checked whatever the distribution: a key set is a key meant)
    if isinstance(algo["atoms"], bool) or not isinstance(algo["atoms"], int) or algo["atoms"] < 2:
        raise ConfigError(f"algo.atoms={algo['atoms']!r} must be an integer of at least 2: C51's support needs two "
                          f"atoms or more (the paper's 51)")
    check_range("algo.v_min", algo["v_min"])
    check_range("algo.v_max", algo["v_max"])
    if not algo["v_min"] < algo["v_max"]:
        raise ConfigError(f"algo.v_min={algo['v_min']} must be below algo.v_max={algo['v_max']}: the support "
                          f"spans [v_min, v_max] (the paper's [-10, 10])")
    check_positive_int("algo.quantiles", algo["quantiles"])


#: each distribution's loss, for the message refusing another `algo.loss` with it
DISTRIBUTION_LOSS = {"categorical": "the cross-entropy to the projected target",
                     "quantile": "the quantile Huber loss"}


def value_head(algo: DQNConfig) -> ValueHead:
    if algo.distribution == Distribution.categorical:
        return CategoricalHead(algo.atoms, algo.v_min, algo.v_max)
    if algo.distribution == Distribution.quantile:
        return QuantileHead(algo.quantiles)
    return ValueHead()


def q_torso(spaces: SpaceInfo, hidden_sizes: Sequence[int], torso: Torso | None = None
            ) -> tuple[tuple[int, ...] | None, ObservationEncoder | None, Sequence[int]]:
    """What the Q-network reads observations through: (`image_shape`, `encoder`, `hidden_sizes`) of QNetwork.

    env.atari's stacked frames with the Nature CNN: its convolutions held by the Q-network itself, with the paper's
    heads (dueling: a value and an advantage stream of 512 units each), the layout of DQN's Atari checkpoints. Any
    other image (or network.image.cnn=impala): the observation encoder every algorithm reads images through
    (FramesEncoder: the CNN and its 512 units, IMPALA's 256, channel-last images transposed in it), then linear heads,
    no MLP; its seeds stack (FramesEncoder.stack_members).
    Other observations: the encoder (flattened, one-hot), then the MLP. network.torso (`torso`): the user's module,
    then the MLP, whatever the observations."""
    if torso is not None:
        return None, observation_encoder(spaces, torso=torso), hidden_sizes
    if spaces.stacked and spaces.cnn == "nature":
        return spaces.obs_shape, None, hidden_sizes
    encoder = observation_encoder(spaces, frames=True)
    return None, encoder, () if spaces.frames else hidden_sizes


def q_network(algo: DQNConfig, spaces: SpaceInfo, hidden_sizes: Sequence[int],
              torso: Torso | None = None) -> QNetwork | DuelingQNetwork:
    assert spaces.n_actions is not None   # a Discrete action space (ALGORITHM.actions)
    image_shape, encoder, hidden = q_torso(spaces, hidden_sizes, torso)
    return (DuelingQNetwork if algo.dueling else QNetwork)(
        features(encoder, spaces), spaces.n_actions, hidden, image_shape, encoder=encoder, head=value_head(algo),
        linear=linear_layer(algo.noisy_sigma if algo.noisy else None))


def parameters(algo: DQNConfig, spaces: SpaceInfo, hidden_sizes: tuple[int, ...],
               torso: Torso | None = None) -> int:
    with torch.device("meta"):
        return count_parameters(q_network(algo, spaces, hidden_sizes, torso))


def build(algo: DQNConfig, context: BuildContext) -> DQN:
    spaces = context.spaces
    replay = context.replay
    assert spaces.n_actions is not None   # a Discrete action space (ALGORITHM.actions)
    image_shape, encoder, hidden = q_torso(spaces, context.hidden_sizes, context.torso)
    return DQN(features(encoder, spaces), spaces.n_actions, hidden_sizes=hidden, lr=algo.lr, tau=algo.tau,
               target_update_interval=algo.target_update_interval, exploration_fraction=algo.exploration_fraction,
               exploration_initial_eps=algo.exploration_initial_eps,
               exploration_final_eps=algo.exploration_final_eps,
               # (not clipped: an infinite norm, which scales the gradients by exactly 1)
               max_grad_norm=algo.max_grad_norm if algo.max_grad_norm is not None else math.inf,
               lr_schedule=algo.lr_schedule, double=algo.double, dueling=algo.dueling, loss=algo.loss,
               total_steps=context.total_steps, total_updates=context.planned_updates, device=context.device,
               # Exploration has its own generator, so changing the update code never changes what is explored.
               rng=np.random.default_rng(context.seed),
               report_td_errors=replay.update_priorities if isinstance(replay, PrioritizedReplayBuffer) else None,
               image_shape=image_shape, activation=context.activation, encoder=encoder, head=value_head(algo),
               noisy_sigma=algo.noisy_sigma if algo.noisy else None, adam_eps=algo.adam_eps)


ALGORITHM = AlgoSpec(name="dqn", family=Family.OFF_POLICY, schema=DQNConfig, check=check, build=build,
                     parameters=parameters, actions=frozenset({ActionKind.DISCRETE}), frames=True,
                     channels_last=True, members=DQNMembers, prioritized=True)

"""Does rlexp's PPO (and A2C) make the update SB3's does? The same weights and the same rollout into both, one
call of each library's learning step, and the updated weights compared.

    python benchmarks/sb3_update_parity.py --sb3-python /path/to/python/with/stable-baselines3

rlexp collects a rollout on real CartPole-v1 envs (4 envs x 16 steps, with time limits and terminations) and
computes its advantages; SB3's rollout buffer is filled with the same samples (a time limit's bootstrap in the
reward, as SB3's collection puts it), SB3 computes its own GAE (compared with rlexp's), and its
policy with the same weights (rlexp's policy and value members map to SB3's mlp_extractor.policy_net/value_net,
action_net and value_net). Each library then learns from the rollout: PPO for 3 epochs of one whole-rollout
minibatch (so the order SB3 shuffles the samples into changes nothing but rounding), A2C its single step. The
largest absolute difference of any updated weight is printed.

Then continuous actions with observation and reward normalization, on real Hopper-v5 envs (2 envs, time limits of
40 and 12 steps, so episodes end inside the rollout both by the limit and by falling): PPO with RL Zoo's Hopper
preset (log std -2, ortho_init false, ReLU 256-256, gamma 0.999, 5 epochs of minibatches of 32 over 2 x 64 steps),
A2C with log std 0 (2 x 32 steps, many draws beyond the action bounds). rlexp collects the rollout through its
normalization (rlexp/envs/normalization.py, as the collector applies it); the raw stream its envs returned (reset
observations, next and final observations, rewards, terminations and time limits) is replayed to SB3 as a VecEnv
wrapped in SB3's own VecNormalize (gamma the algorithm's), and SB3's own collect_rollouts runs on it, acting with
rlexp's unclipped draws (its forward returns them with its own V(s) and log pi(a|s)): SB3 clips the actions it
sends, normalizes, adds gamma * V(normalized terminal observation) to the normalized reward at a time limit, and
computes GAE. Compared step by step: the clipped actions sent and the unclipped ones stored, the normalized
observations, final observations and rewards, the running statistics at the end (observation and return mean,
variance and count, the per-env discounted returns), log pi(a|s), the Gaussian's entropy and V(s), the rewards
with the bootstrap, advantages and returns; then each learns (PPO's minibatches in rlexp's shuffled order, SB3's
np.random.permutation replaced by it) and the updated weights (log std included) are compared. Every largest
absolute difference is printed; the exit code is 1 if any is above 1e-5.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: SB3's PPO or A2C with the hyperparameters `h` on `env`, its policy given the weights rlexp started from (both
#: SB3 sides run it)
SB3_MODEL = r"""
kwargs = dict(learning_rate=h["lr"], n_steps=h["n_steps"], gamma=h["gamma"], gae_lambda=h["gae_lambda"],
              ent_coef=h["ent_coef"], vf_coef=h["vf_coef"], max_grad_norm=h["max_grad_norm"],
              normalize_advantage=h["normalize_advantage"], device="cpu", seed=0,
              policy_kwargs=dict(net_arch=dict(pi=h["hidden"], vf=h["hidden"]), log_std_init=h["log_std_init"],
                                 ortho_init=h["ortho_init"], activation_fn=nn.ReLU if h["relu"] else nn.Tanh))
if h["algo"] == "ppo":
    model = PPO("MlpPolicy", env, batch_size=h["batch_size"], n_epochs=h["n_epochs"], clip_range=h["clip_range"],
                **kwargs)
else:
    model = A2C("MlpPolicy", env, **kwargs)
policy = model.policy
with torch.no_grad():
    for name, tensor in data["weights"].items():
        dict(policy.named_parameters())[name].copy_(tensor)
"""

SB3_SIDE = r"""
import sys, torch, numpy as np
from torch import nn
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_vec_env
torch.set_num_threads(1)
data = torch.load(sys.argv[1], weights_only=False)
h = data["hyper"]
env = make_vec_env("CartPole-v1", n_envs=h["num_envs"], seed=0, env_kwargs={"render_mode": None})
""" + SB3_MODEL + r"""
buffer = model.rollout_buffer
for field in ("observations", "actions", "values", "log_probs", "rewards", "episode_starts"):
    getattr(buffer, field)[...] = data["rollout"][field].numpy().reshape(getattr(buffer, field).shape)
buffer.full, buffer.pos, buffer.generator_ready = True, buffer.buffer_size, False
# SB3's own GAE over the rollout (its rewards carry gamma * V(final obs) at a time limit, as its collection adds)
buffer.compute_returns_and_advantage(last_values=data["rollout"]["last_values"], dones=data["rollout"]["dones"].numpy())
advantages = torch.as_tensor(buffer.advantages.copy())
model._current_progress_remaining = 1.0
from stable_baselines3.common.logger import configure
model.set_logger(configure(None, []))   # learn() would set it up; train() logs to it
model.train()
torch.save({"weights": {name: p.detach().clone() for name, p in policy.named_parameters()},
            "advantages": advantages}, sys.argv[2])
"""

SB3_CONTINUOUS = r"""
import sys, torch, numpy as np, gymnasium as gym
from torch import nn
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
torch.set_num_threads(1)
data = torch.load(sys.argv[1], weights_only=False)
h, raw = data["hyper"], data["raw"]


class Replay(VecEnv):
    # rlexp's envs' raw stream, step by step, in SB3's VecEnv layout: a done env returns its new episode's first
    # observation, its last one in info["terminal_observation"], a time limit in info["TimeLimit.truncated"]
    def __init__(self):
        self.t, self.sent = 0, []
        super().__init__(h["num_envs"], gym.spaces.Box(-np.inf, np.inf, raw["reset_obs"].shape[1:], np.float64),
                         gym.spaces.Box(raw["low"], raw["high"], dtype=np.float32))
    def reset(self):
        return raw["reset_obs"].copy()
    def step_async(self, actions):
        self.sent.append(np.array(actions))
    def step_wait(self):
        t, self.t = self.t, self.t + 1
        term, trunc = raw["terminated"][t], raw["truncated"][t]
        dones = term | trunc
        infos = [{"terminal_observation": raw["final_obs"][t, i].copy(),
                  "TimeLimit.truncated": bool(trunc[i] and not term[i])} if dones[i] else {}
                 for i in range(self.num_envs)]
        return raw["next_obs"][t].copy(), raw["rewards"][t].copy(), dones, infos
    def close(self): pass
    def get_attr(self, name, indices=None): return [None] * self.num_envs
    def set_attr(self, name, value, indices=None): pass
    def env_method(self, name, *args, indices=None, **kwargs): return [None] * self.num_envs
    def env_is_wrapped(self, wrapper_class, indices=None): return [False] * self.num_envs


steps = []   # what VecNormalize hands the algorithm at each step: observations, rewards, terminal observations
class Recorded(VecNormalize):
    def step_wait(self):
        obs, rewards, dones, infos = super().step_wait()
        final = np.full_like(obs, np.nan)
        for i, info in enumerate(infos):
            if dones[i]:
                final[i] = info["terminal_observation"]
        steps.append((obs.copy(), rewards.copy(), final))
        return obs, rewards, dones, infos


replay = Replay()
env = Recorded(replay, gamma=h["gamma"])   # SB3's defaults otherwise (RL Zoo's `normalize: true`)
""" + SB3_MODEL + r"""
# SB3's own collection, acting with rlexp's (unclipped) draws: its forward returns them with its own V(s) and
# log pi(a|s); collect_rollouts clips them for the env, adds the time-limit bootstrap and computes GAE
evaluated = []
def replay_forward(obs, deterministic=False):
    actions = data["actions"][len(evaluated)]
    values, log_prob, entropy = policy.evaluate_actions(obs, actions)
    evaluated.append(entropy)
    return actions, values, log_prob
policy.forward = replay_forward
_, callback = model._setup_learn(h["n_steps"] * h["num_envs"], None)
model.collect_rollouts(model.env, callback, model.rollout_buffer, h["n_steps"])
buffer = model.rollout_buffer
collected = {field: torch.as_tensor(getattr(buffer, field).copy()) for field in
             ("observations", "actions", "rewards", "values", "log_probs", "advantages", "returns")}
# the minibatches in rlexp's order (SB3 shuffles with np.random.permutation, over its env-major flattening)
orders = iter(data["orders"])
np.random.permutation = lambda n: next(orders)
model._current_progress_remaining = 1.0
from stable_baselines3.common.logger import configure
model.set_logger(configure(None, []))
model.train()
torch.save({"weights": {name: p.detach().clone() for name, p in policy.named_parameters()},
            "collected": collected, "entropy": torch.stack(evaluated),
            "sent": torch.as_tensor(np.stack(replay.sent)),
            "normalized": [torch.as_tensor(np.stack(column)) for column in zip(*steps)],
            "statistics": {"obs_mean": env.obs_rms.mean, "obs_var": env.obs_rms.var, "obs_count": env.obs_rms.count,
                           "ret_mean": env.ret_rms.mean, "ret_var": env.ret_rms.var, "ret_count": env.ret_rms.count,
                           "returns": env.returns}}, sys.argv[2])
"""


def sb3_names(policy) -> dict[str, torch.Tensor]:
    """rlexp's batched policy and value members as SB3's ActorCriticPolicy parameters."""
    out = {}
    for i, layer in enumerate(policy.hidden):
        for member, net in ((0, "policy_net"), (1, "value_net")):
            out[f"mlp_extractor.{net}.{2 * i}.weight"] = layer.weight[member].T.detach().clone()
            out[f"mlp_extractor.{net}.{2 * i}.bias"] = layer.bias[member, 0].detach().clone()
    out.update({"action_net.weight": policy.policy_head.weight.detach().clone(),
                "action_net.bias": policy.policy_head.bias.detach().clone(),
                "value_net.weight": policy.value_head.weight.detach().clone(),
                "value_net.bias": policy.value_head.bias.detach().clone()})
    if policy.log_std is not None:   # a diagonal Gaussian's state-independent log std
        out["log_std"] = policy.log_std.detach().clone()
    return out


def compare(algo: str, sb3_python: str) -> float:
    from rlexp.agents import a2c, ppo
    from rlexp.agents.base import BuildContext
    from rlexp.config.typed import typed
    from rlexp.envs import describe_spaces, make_env, make_vector_env
    from rlexp.rollouts.storage import RolloutStorage
    from rlexp.runners.collector import Collector
    from rlexp.runners.faults import NonFiniteGuard
    from rlexp.runners.on_policy import OnPolicyRunner, OnPolicySettings
    from rlexp.runners.requests import serve

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    hyper = dict(algo=algo, num_envs=4, n_steps=16, lr=1e-3, gamma=0.98, gae_lambda=0.9, ent_coef=0.01,
                 vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=algo == "ppo", n_epochs=3, clip_range=0.2,
                 batch_size=16 * 4, hidden=[64, 64], log_std_init=0.0, ortho_init=True, relu=False)   # (one minibatch)
    algo_cfg = dict(name=algo, lr=hyper["lr"], lr_schedule="constant", ent_coef=hyper["ent_coef"],
                    vf_coef=hyper["vf_coef"],
                    max_grad_norm=hyper["max_grad_norm"], normalize_advantage=hyper["normalize_advantage"],
                    gamma=hyper["gamma"], gae_lambda=hyper["gae_lambda"], n_steps=hyper["n_steps"],
                    log_std_init=0.0, ortho_init=True, use_sde=False, sde_sample_freq=-1, n_epochs=hyper["n_epochs"],
                    batch_size=hyper["batch_size"], clip_range=hyper["clip_range"],
                    clip_range_schedule="constant", clip_range_vf=None, target_kl=None, optimizer="rmsprop",
                    rms_prop_eps=1e-5)
    env = make_env("CartPole-v1", {"max_episode_steps": 12})   # time limits inside the rollout too
    spaces = describe_spaces(env.observation_space, env.action_space, "CartPole-v1")
    context = BuildContext(spaces=spaces, hidden_sizes=(64, 64), total_steps=10**6, planned_updates=0,
                           num_envs=hyper["num_envs"], device=cpu, seed=0, activation="tanh")
    module = ppo if algo == "ppo" else a2c
    agent = module.build(typed(algo_cfg, module.ALGORITHM.schema), context)

    class Context:
        guard = NonFiniteGuard()

        def episodes_ended(self, *args):
            pass

    collector = Collector(make_vector_env("CartPole-v1", {"max_episode_steps": 12}, None, hyper["num_envs"], "sync"),
                          0, "CartPole-v1")
    storage = RolloutStorage(hyper["n_steps"], hyper["num_envs"], spaces.obs_shape, spaces.action_shape, True, cpu)
    runner = OnPolicyRunner(agent, collector, storage, OnPolicySettings(10**6, hyper["n_steps"], hyper["num_envs"],
                                                                        hyper["gamma"], hyper["gae_lambda"]), Context())
    collector.start()
    for t in range(hyper["n_steps"]):   # (collect is a generator of the calls it makes to the agent)
        serve(runner.collect((t + 1) * hyper["num_envs"]), agent)
    storage.finish(agent.values(torch.as_tensor(collector.obs, dtype=torch.float32)), hyper["gamma"],
                   hyper["gae_lambda"])
    # SB3's layout of the same rollout: a time limit adds gamma * V(final obs) to the step's reward (its
    # collect_rollouts), episode_starts[t] marks an episode ended at t - 1 (the first row: every env starts one)
    truncated = storage.episode_ends * (1 - storage.terminations)
    starts = torch.cat([torch.ones(1, hyper["num_envs"]), storage.episode_ends[:-1]])
    rollout = {"observations": storage.observations, "actions": storage.actions.float(),
               "values": storage.values, "log_probs": storage.log_probs, "episode_starts": starts,
               "rewards": storage.rewards + hyper["gamma"] * truncated * storage.next_values,
               "last_values": agent.values(torch.as_tensor(collector.obs, dtype=torch.float32)),
               "dones": storage.episode_ends[-1]}
    before = sb3_names(agent.policy)
    agent.learn(storage)
    ours = sb3_names(agent.policy)
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "in.pt", Path(tmp) / "out.pt"
        torch.save({"hyper": hyper, "weights": before, "rollout": {k: v.clone() for k, v in rollout.items()}}, data)
        subprocess.run([sb3_python, "-c", SB3_SIDE, str(data), str(out)], check=True)
        theirs = torch.load(out, weights_only=True)
    advantages = (storage.advantages - theirs["advantages"]).abs().max().item()
    moved = max((ours[k] - before[k]).abs().max().item() for k in ours)
    differ = max((ours[k] - theirs["weights"][k]).abs().max().item() for k in ours)
    print(f"{algo}: {int(storage.episode_ends.sum())} episode ends in the rollout ({int(truncated.sum())} at the time "
          f"limit); advantages differ from SB3's GAE by up to {advantages:.2e}; the update moved the weights by up to "
          f"{moved:.2e}, and rlexp's and SB3's updated weights differ by up to {differ:.2e}")
    return max(differ, advantages)


class Recording:
    """The training envs, passed through, keeping the raw stream they return (what VecNormalize gets on SB3's
    side): the reset observations, and per step the actions sent, next observations, final observations of the
    episodes that ended, rewards, terminations and truncations."""

    def __init__(self, envs: Any) -> None:
        self.envs = envs
        self.reset_obs = np.zeros(0)
        self.steps: list[tuple[np.ndarray, ...]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.envs, name)

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self.envs.reset(**kwargs)
        self.reset_obs = np.array(obs)
        return obs, info

    def step(self, actions: np.ndarray) -> Any:
        next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
        final = np.array(next_obs)
        for env in np.flatnonzero(terminated | truncated):
            final[env] = infos["final_obs"][env]
        self.steps.append((np.array(actions), np.array(next_obs), final, np.array(rewards, np.float64),
                           np.array(terminated), np.array(truncated)))
        return next_obs, rewards, terminated, truncated, infos


def continuous_settings(algo: str) -> dict[str, Any]:
    """PPO: RL Zoo's Hopper preset (conf/tuned/ppo_Hopper-v5.yaml; log std -2, PyTorch's initialisation, ReLU
    256-256, minibatches of 32 over 5 epochs) on a shorter rollout; A2C: log std 0 (many draws beyond the bounds,
    so the clipping is exercised), orthogonal initialisation, tanh 64-64. Time limits short enough that episodes
    end (by the limit and by falling) inside the rollout."""
    if algo == "ppo":
        return dict(algo=algo, num_envs=2, n_steps=64, max_episode_steps=40, lr=9.80828e-5, gamma=0.999,
                    gae_lambda=0.99, ent_coef=0.00229519, vf_coef=0.835671, max_grad_norm=0.7,
                    normalize_advantage=True, n_epochs=5, batch_size=32, clip_range=0.2, log_std_init=-2.0,
                    ortho_init=False, relu=True, hidden=[256, 256])
    return dict(algo=algo, num_envs=2, n_steps=32, max_episode_steps=12, lr=7e-4, gamma=0.99, gae_lambda=0.9,
                ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=False, n_epochs=1,
                batch_size=64, clip_range=1.0, log_std_init=0.0, ortho_init=True, relu=False, hidden=[64, 64])


def compare_continuous(algo: str, sb3_python: str) -> float:
    """rlexp's PPO or A2C on Hopper-v5 (3 continuous actions in [-1, 1]) with observation and reward normalization,
    against SB3's collection through VecNormalize of the same raw stream, and its learning step."""
    from rlexp.agents import a2c, ppo
    from rlexp.agents.base import BuildContext
    from rlexp.config.schema import NormalizeConfig
    from rlexp.config.typed import typed
    from rlexp.envs import describe_spaces, make_env, make_vector_env
    from rlexp.envs.normalization import make_normalization
    from rlexp.rollouts.storage import RolloutStorage
    from rlexp.runners.collector import Collector, Transitions
    from rlexp.runners.faults import NonFiniteGuard
    from rlexp.runners.on_policy import OnPolicyRunner, OnPolicySettings
    from rlexp.runners.requests import serve

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    h = continuous_settings(algo)
    envs_kwargs = {"max_episode_steps": h["max_episode_steps"]}
    algo_cfg = dict(name=algo, lr=h["lr"], lr_schedule="constant", ent_coef=h["ent_coef"], vf_coef=h["vf_coef"],
                    max_grad_norm=h["max_grad_norm"], normalize_advantage=h["normalize_advantage"], gamma=h["gamma"],
                    gae_lambda=h["gae_lambda"], n_steps=h["n_steps"], log_std_init=h["log_std_init"],
                    ortho_init=h["ortho_init"], use_sde=False, sde_sample_freq=-1, n_epochs=h["n_epochs"],
                    batch_size=h["batch_size"], clip_range=h["clip_range"], clip_range_schedule="constant",
                    clip_range_vf=None, target_kl=None, optimizer="rmsprop", rms_prop_eps=1e-5)
    env = make_env("Hopper-v5", envs_kwargs)
    spaces = describe_spaces(env.observation_space, env.action_space, "Hopper-v5")
    context = BuildContext(spaces=spaces, hidden_sizes=tuple(h["hidden"]), total_steps=10**6, planned_updates=0,
                           num_envs=h["num_envs"], device=cpu, seed=0, activation="relu" if h["relu"] else "tanh")
    module = ppo if algo == "ppo" else a2c
    agent = module.build(typed(algo_cfg, module.ALGORITHM.schema), context)

    class Context:
        guard = NonFiniteGuard()

        def episodes_ended(self, *args: Any) -> None:
            pass

    normalization = make_normalization(NormalizeConfig(obs=True, reward=True), h["gamma"], spaces.obs_shape,
                                       h["num_envs"])
    assert normalization is not None
    envs = Recording(make_vector_env("Hopper-v5", envs_kwargs, None, h["num_envs"], "sync"))
    collector = Collector(envs, 0, "Hopper-v5", normalization)
    seen: list[tuple[Transitions, np.ndarray]] = []   # each step's transitions, and the observations it led to
    receive = collector.receive

    def recording_receive(step: int) -> Transitions:
        transitions = receive(step)
        assert collector.obs is not None
        seen.append((transitions, collector.obs.copy()))
        return transitions

    assert not collector.overlaps   # a sync vector env steps in `step`, which Recording sees
    collector.receive = recording_receive   # type: ignore[method-assign]
    storage = RolloutStorage(h["n_steps"], h["num_envs"], spaces.obs_shape, spaces.action_shape, False, cpu)
    runner = OnPolicyRunner(agent, collector, storage, OnPolicySettings(10**6, h["n_steps"], h["num_envs"],
                                                                        h["gamma"], h["gae_lambda"]), Context())
    collector.start()
    for t in range(h["n_steps"]):
        serve(runner.collect((t + 1) * h["num_envs"]), agent)
    storage.finish(agent.values(torch.as_tensor(collector.obs, dtype=torch.float32)), h["gamma"], h["gae_lambda"])
    truncated = storage.episode_ends * (1 - storage.terminations)
    bootstrapped = storage.rewards + h["gamma"] * truncated * storage.next_values
    with torch.no_grad():
        _, entropy, _ = agent.policy.evaluate(storage.observations.flatten(0, 1), storage.actions.flatten(0, 1))
    entropy = entropy.view(h["n_steps"], h["num_envs"])
    # the minibatches rlexp's epochs will draw (its generator, replayed), in SB3's env-major flattening
    total = h["n_steps"] * h["num_envs"]
    shuffle = agent.generator
    assert isinstance(shuffle, torch.Generator)
    replayed = torch.Generator()
    replayed.set_state(shuffle.get_state())
    env_major = torch.arange(total).view(h["num_envs"], h["n_steps"]).T.flatten()   # rlexp's row -> SB3's row
    orders = [env_major[torch.randperm(total, generator=replayed) if h["batch_size"] < total else torch.arange(total)]
              .numpy() for _ in range(h["n_epochs"])]
    before = sb3_names(agent.policy)
    agent.learn(storage)
    ours = sb3_names(agent.policy)
    actions, next_obs, final_obs, rewards, terminated, truncations = (np.stack(c) for c in zip(*envs.steps))
    raw = {"reset_obs": envs.reset_obs, "next_obs": next_obs, "final_obs": final_obs, "rewards": rewards,
           "terminated": terminated, "truncated": truncations, "low": spaces.action_low, "high": spaces.action_high}
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "in.pt", Path(tmp) / "out.pt"
        torch.save({"hyper": h, "weights": before, "raw": raw, "actions": storage.actions.clone(), "orders": orders},
                   data)
        subprocess.run([sb3_python, "-c", SB3_CONTINUOUS, str(data), str(out)], check=True)
        theirs = torch.load(out, weights_only=False)
    sb3 = theirs["collected"]

    def gap(a: Any, b: Any) -> float:
        return float((torch.as_tensor(np.asarray(a), dtype=torch.float64)
                      - torch.as_tensor(np.asarray(b), dtype=torch.float64)).abs().max())

    ended = np.stack([t.ended for t, _ in seen])
    sb3_obs, sb3_rewards, sb3_final = theirs["normalized"]
    stats = theirs["statistics"]
    ours_stats = {"obs_mean": normalization.obs_rms.mean, "obs_var": normalization.obs_rms.var,
                  "obs_count": normalization.obs_rms.count, "ret_mean": normalization.return_rms.mean,
                  "ret_var": normalization.return_rms.var, "ret_count": normalization.return_rms.count,
                  "returns": normalization.returns}
    gaps = {
        "actions sent to the envs (clipped)": gap(actions, theirs["sent"]),
        "actions stored (unclipped)": gap(storage.actions, sb3["actions"]),
        "normalized observations": max(gap(storage.observations[0], sb3["observations"][0]),
                                       gap(np.stack([obs for _, obs in seen]), sb3_obs)),
        "normalized final observations": gap(np.stack([t.next_obs for t, _ in seen])[ended], sb3_final.numpy()[ended]),
        "normalized rewards": gap(np.stack([t.rewards for t, _ in seen]), sb3_rewards),
        "statistics (mean, var, count, returns)": max(gap(ours_stats[k], stats[k]) for k in ours_stats),
        "log pi(a|s)": gap(storage.log_probs, sb3["log_probs"]),
        "entropy": gap(entropy, theirs["entropy"]),
        "V(s)": gap(storage.values, sb3["values"]),
        "rewards with the time-limit bootstrap": gap(bootstrapped, sb3["rewards"]),
        "GAE advantages": gap(storage.advantages, sb3["advantages"]),
        "returns": gap(storage.returns, sb3["returns"]),
        "updated weights": max(gap(ours[k], theirs["weights"][k]) for k in ours),
    }
    beyond = int(((storage.actions < torch.as_tensor(spaces.action_low))
                  | (storage.actions > torch.as_tensor(spaces.action_high))).any(-1).sum())
    moved = max(gap(ours[k], before[k]) for k in ours)
    print(f"{algo} Hopper-v5 (normalized): {int(storage.episode_ends.sum())} episode ends in the rollout "
          f"({int(truncated.sum())} at the time limit), {beyond} of {total} draws beyond the action bounds; the "
          f"update moved the weights by up to {moved:.2e}; rlexp against SB3 (largest absolute difference):")
    for name, value in gaps.items():
        print(f"  {name:<42} {value:.2e}")
    return max(gaps.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sb3-python", required=True, help="a Python interpreter with stable-baselines3 installed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    worst = max([compare(algo, args.sb3_python) for algo in ("ppo", "a2c")]
                + [compare_continuous(algo, args.sb3_python) for algo in ("ppo", "a2c")])
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())

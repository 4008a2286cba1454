"""Does rlexp's PPO (and A2C) make the update SB3's does? The same weights and the same rollout into both, one
call of each library's learning step, and the updated weights compared.

    python benchmarks/sb3_update_parity.py --sb3-python /path/to/python/with/stable-baselines3

rlexp collects a rollout on real CartPole-v1 envs (4 envs x 16 steps, with time limits and terminations) and
computes its advantages; SB3's rollout buffer is filled with the same samples (a time limit's bootstrap in the
reward, as SB3's collection puts it), SB3 computes its own GAE (compared with rlexp's), and its
policy with the same weights (rlexp's policy and value members map to SB3's mlp_extractor.policy_net/value_net,
action_net and value_net). Each library then learns from the rollout: PPO for 3 epochs of one whole-rollout
minibatch (so the order SB3 shuffles the samples into changes nothing but rounding), A2C its single step. The
largest absolute difference of any updated weight is printed; the exit code is 1 above 1e-5.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import torch

SB3_SIDE = r"""
import sys, torch, numpy as np
from torch import nn
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_vec_env
torch.set_num_threads(1)
data = torch.load(sys.argv[1], weights_only=False)
h = data["hyper"]
env = make_vec_env("CartPole-v1", n_envs=h["num_envs"], seed=0, env_kwargs={"render_mode": None})
kwargs = dict(learning_rate=h["lr"], n_steps=h["n_steps"], gamma=h["gamma"], gae_lambda=h["gae_lambda"],
              ent_coef=h["ent_coef"], vf_coef=h["vf_coef"], max_grad_norm=h["max_grad_norm"],
              normalize_advantage=h["normalize_advantage"], device="cpu", seed=0,
              policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=nn.Tanh))
if h["algo"] == "ppo":
    model = PPO("MlpPolicy", env, batch_size=h["n_steps"] * h["num_envs"], n_epochs=h["n_epochs"],
                clip_range=h["clip_range"], **kwargs)
else:
    model = A2C("MlpPolicy", env, **kwargs)
policy = model.policy
with torch.no_grad():
    for name, tensor in data["weights"].items():
        dict(policy.named_parameters())[name].copy_(tensor)
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

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    hyper = dict(algo=algo, num_envs=4, n_steps=16, lr=1e-3, gamma=0.98, gae_lambda=0.9, ent_coef=0.01,
                 vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=algo == "ppo", n_epochs=3, clip_range=0.2)
    algo_cfg = dict(lr=hyper["lr"], lr_schedule="constant", ent_coef=hyper["ent_coef"], vf_coef=hyper["vf_coef"],
                    max_grad_norm=hyper["max_grad_norm"], normalize_advantage=hyper["normalize_advantage"],
                    gamma=hyper["gamma"], gae_lambda=hyper["gae_lambda"], n_steps=hyper["n_steps"],
                    log_std_init=0.0, ortho_init=True, use_sde=False, sde_sample_freq=-1, n_epochs=hyper["n_epochs"],
                    batch_size=hyper["n_steps"] * hyper["num_envs"], clip_range=hyper["clip_range"],
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
    for t in range(hyper["n_steps"]):
        runner.collect((t + 1) * hyper["num_envs"])
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sb3-python", required=True, help="a Python interpreter with stable-baselines3 installed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    worst = max(compare(algo, args.sb3_python) for algo in ("ppo", "a2c"))
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())

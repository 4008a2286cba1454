"""Config composition for every algo x env pair, presets, precedence, and validation errors."""

import re

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from rlexp.agents.registry import algorithms
from rlexp.commands.train import resolved_config
from rlexp.config import compat
from rlexp.config.compat import config_conflicts
from rlexp.config.device import resolve_device
from rlexp.config.schema import OffPolicyConfig
from rlexp.config.validate import validate
from rlexp.errors import ConfigError
from rlexp.runners.off_policy import planned_updates
from tests.conftest import CONF, algo_config, compose_config

ALGOS = sorted(p.stem for p in (CONF / "algo").glob("*.yaml"))
ENVS = sorted(p.stem for p in (CONF / "env").glob("*.yaml"))
DISCRETE = {"CartPole-v1", "Acrobot-v1"}


def resolved(overrides: list[str]) -> dict:
    return resolved_config(compose_config(overrides))


def test_the_config_groups_hold_what_the_docs_promise():
    assert ALGOS == ["a2c", "crossq", "ddpg", "dqn", "ppo", "qrdqn", "rainbow", "sac", "td3", "tqc"]
    assert {"CartPole-v1", "Acrobot-v1", "LunarLander-v3", "Pendulum-v1", "MountainCarContinuous-v0",
            "LunarLanderContinuous-v3", "BipedalWalker-v3", "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5",
            "atari", "FrozenLake-v1", "Taxi-v4", "CarRacing-v3", "MiniGrid-DoorKey-5x5-v0"} == set(ENVS)
    tuned = {p.stem for p in (CONF / "tuned").glob("*.yaml")}
    assert {"dqn_CartPole-v1", "dqn_Acrobot-v1", "dqn_LunarLander-v3", "dqn_atari", "dqn_FrozenLake-v1",
            "dqn_Taxi-v4"} <= tuned
    for algo in ("ddpg", "td3"):  # the continuous-control presets
        for env in ("Pendulum-v1", "MountainCarContinuous-v0", "LunarLanderContinuous-v3", "BipedalWalker-v3",
                    "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"):
            assert f"{algo}_{env}" in tuned
    for preset in ("sac_Pendulum-v1", "sac_LunarLanderContinuous-v3", "sac_MountainCarContinuous-v0",
                   "sac_HalfCheetah-v5", "ppo_CartPole-v1", "ppo_LunarLander-v3", "ppo_Pendulum-v1",
                   "ppo_HalfCheetah-v5", "ppo_Hopper-v5", "a2c_CartPole-v1", "a2c_LunarLander-v3",
                   "ppo_CarRacing-v3", "ppo_MiniGrid-DoorKey-5x5-v0", "tqc_Pendulum-v1", "tqc_HalfCheetah-v5",
                   "tqc_Hopper-v5", "crossq_Pendulum-v1", "crossq_HalfCheetah-v5", "crossq_Hopper-v5"):
        assert preset in tuned   # the results table


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("algo", ALGOS)
def test_every_algo_env_pair_composes_and_validates(algo, env):
    cfg = resolved([f"algo={algo}", f"env={env}"])
    # (an env config may name the module that registers its env: minigrid:MiniGrid-DoorKey-5x5-v0)
    assert cfg["algo"]["name"] == algo
    assert cfg["env"]["id"].rpartition(":")[2] == ("ALE/Pong-v5" if env == "atari" else env)
    # value checks pass for every pair (validate returns the algorithm's registry entry); space fit is checked
    # against the env (test_envs)
    assert validate(cfg, algorithms()).name == algo


def test_public_keys_exist():
    dqn = resolved(["algo=dqn"])
    td3 = resolved(["algo=td3", "env=Pendulum-v1"])
    for cfg in (dqn, td3):
        for key in ("seed", "device", "total_steps"):
            assert key in cfg
        for key in ("gamma", "tau", "batch_size", "buffer_size", "learning_starts", "train_freq", "gradient_steps"):
            assert key in cfg["algo"]
        assert "hidden_sizes" in cfg["network"]
        assert "every" in cfg["eval"] and "episodes" in cfg["eval"] and "every" in cfg["checkpoint"]
    for key in ("lr", "target_update_interval", "exploration_fraction", "exploration_initial_eps",
                "exploration_final_eps", "max_grad_norm"):
        assert key in dqn["algo"]
    for key in ("actor_lr", "critic_lr", "policy_delay", "target_noise", "target_noise_clip"):
        assert key in td3["algo"]
    assert set(td3["algo"]["noise"]) >= {"type", "sigma"}


def test_tuned_preset_is_applied_automatically():
    plain = resolved(["algo=td3", "env=MountainCarContinuous-v0", "~tuned"])
    tuned = resolved(["algo=td3", "env=Pendulum-v1"])
    assert tuned["algo"]["gamma"] == 0.98 and tuned["algo"]["learning_starts"] == 1000
    assert tuned["total_steps"] == 20000
    assert plain["algo"]["noise"]["type"] == "gaussian"
    assert resolved(["algo=td3", "env=MountainCarContinuous-v0"])["algo"]["noise"]["type"] == "ou"


def test_command_line_overrides_win_over_presets():
    cfg = resolved(["algo=td3", "env=Pendulum-v1", "algo.gamma=0.9", "total_steps=1234"])
    assert cfg["algo"]["gamma"] == 0.9 and cfg["total_steps"] == 1234


def test_env_without_yaml_trains_by_overriding_its_id_with_the_default_budget():
    cfg = resolved(["algo=dqn", "env.id=MountainCar-v0"])
    assert cfg["env"]["id"] == "MountainCar-v0"
    assert cfg["total_steps"] == cfg["env"]["total_steps"] == 50000


@pytest.mark.parametrize("override, message", [
    ("algo.gamma=1.5", "algo.gamma=1.5 is outside [0.0, 1.0]"),
    ("algo.tau=0", "algo.tau=0.0 is outside (0.0, 1.0]"),
    ("algo.batch_size=0", "algo.batch_size=0 must be a positive integer"),
    ("algo.batch_size=200000", "exceeds algo.buffer_size"),
    ("algo.learning_starts=60000", "algo.learning_starts=60000 >= total_steps=50000"),
    ("algo.lr=-1", "algo.lr=-1.0 is outside (0.0, inf]"),
    ("algo.exploration_final_eps=2", "algo.exploration_final_eps=2"),
    ("network.hidden_sizes=[]", "network.hidden_sizes=[] must be a non-empty list"),
    ("eval.episodes=0", "eval.episodes=0 must be a positive integer"),
    ("eval.num_envs=0", "eval.num_envs=0 must be a positive integer"),
    ("total_steps=0", "total_steps=0 must be a positive integer"),
    ("checkpoint.keep=0", "checkpoint.keep=0 must be a positive integer"),
    ("algo.gradient_steps=0", "algo.gradient_steps=0 must be a positive integer, or -1 for one update per env step"),
    ("algo.gradient_steps=-2", "algo.gradient_steps=-2 must be a positive integer, or -1"),
    ("algo.train_freq_unit=episode algo.gradient_steps=2",
     "algo.train_freq_unit=episode with algo.gradient_steps=2 makes the number of updates unknown in advance, "
     "and algo.lr_schedule=linear spans it"),
    ("algo.train_freq_unit=episode algo.gradient_steps=2 algo.lr_schedule=constant algo.prioritized=true",
     "and algo.prioritized's beta annealing spans it"),
    ("env.num_envs=0", "env.num_envs=0 must be a positive integer"),
    ("env.num_envs=2 algo.train_freq_unit=episode algo.gradient_steps=-1",
     "algo.train_freq_unit=episode needs env.num_envs=1 (got 2"),
    ("seed=-1", "seed=-1 is outside [0, "),
    # DQN's distributions and noisy networks (algo=rainbow and algo=qrdqn are DQN with them on)
    ("algo=rainbow algo.atoms=1", "algo.atoms=1 must be an integer of at least 2: C51's support needs two atoms"),
    ("algo.distribution=categorical algo.v_min=5 algo.v_max=5", "algo.v_min=5.0 must be below algo.v_max=5.0"),
    ("algo=qrdqn algo.quantiles=0", "algo.quantiles=0 must be a positive integer"),
    ("algo=rainbow algo.noisy_sigma=0", "algo.noisy_sigma=0.0 is outside (0.0, inf]"),
    ("algo=qrdqn algo.loss=mse", "algo.loss=mse is the expected value's loss, and algo.distribution=quantile learns "
                                 "by its own (the quantile Huber loss)"),
    ("algo.adam_eps=-1", "algo.adam_eps=-1.0 is outside (0.0, inf]"),
    ("algo=tqc env=Pendulum-v1 algo.top_quantiles_to_drop_per_net=25",
     "algo.top_quantiles_to_drop_per_net=25 drops every quantile of algo.n_quantiles=25; drop fewer"),
    ("algo=tqc env=Pendulum-v1 algo.n_critics=0", "algo.n_critics=0 must be a positive integer"),
    # CrossQ: no target networks
    ("algo=crossq env=Pendulum-v1 algo.tau=0.005", "algo.tau=0.005 asks for target networks, which CrossQ learns "
                                                   "without (its critics bootstrap from the joint pass); remove "
                                                   "algo.tau, or use algo=sac"),
    ("algo=crossq env=Pendulum-v1 algo.critic_hidden_sizes=[]", "algo.critic_hidden_sizes=[] must be a non-empty list"),
    ("algo=crossq env=Pendulum-v1 algo.adam_beta1=1", "algo.adam_beta1=1.0 is outside [0.0, 1.0)"),
    ("algo=crossq env=Pendulum-v1 algo.batch_renorm_momentum=0", "algo.batch_renorm_momentum=0.0 is outside (0.0, "),
    ("algo=crossq env=Pendulum-v1 algo.policy_delay=0", "algo.policy_delay=0 must be a positive integer"),
])
def test_bad_values_fail_with_the_key_and_value(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(resolved(override.split()), algorithms())


def test_episode_rounds_validate_and_plan_their_updates():
    for overrides in (["algo.train_freq_unit=episode", "algo.gradient_steps=-1"],  # SB3 < 2.3's default
                      ["algo.train_freq_unit=episode", "algo.gradient_steps=2", "algo.lr_schedule=constant"],
                      ["algo=ddpg", "env=Pendulum-v1", "algo.train_freq_unit=episode", "algo.gradient_steps=3"],
                      ["algo=td3", "env=Pendulum-v1", "algo.train_freq=4", "algo.gradient_steps=-1"]):
        validate(resolved(overrides), algorithms())
    algo = {"learning_starts": 1000, "train_freq": 4, "train_freq_unit": "step", "gradient_steps": 2}

    def planned(algo: dict, total_steps: int, num_envs: int) -> int:
        return planned_updates(algo_config(OffPolicyConfig, algo), total_steps, num_envs)

    assert planned(algo, 9000, 1) == 4000
    assert planned(algo, 9000, 4) == 4000  # gradient_steps per env per round: the same updates per sample
    assert planned({**algo, "gradient_steps": -1}, 9000, 1) == 8000  # one per env step collected
    assert planned({**algo, "train_freq_unit": "episode", "gradient_steps": -1}, 9000, 1) == 8000


def test_td3_specific_checks():
    with pytest.raises(ConfigError, match="algo.policy_delay=0"):
        validate(resolved(["algo=td3", "env=Pendulum-v1", "algo.policy_delay=0"]), algorithms())
    with pytest.raises(ConfigError, match="algo.target_noise=-0.1"):
        validate(resolved(["algo=td3", "env=Pendulum-v1", "algo.target_noise=-0.1"]), algorithms())


@pytest.mark.parametrize("override, message", [
    ("algo.ent_coef=autoo", "algo.ent_coef='autoo' must be auto"),
    ("algo.ent_coef=0", "algo.ent_coef=0"),
    ("algo.ent_coef=true", "algo.ent_coef=True must be auto"),
    ("algo.ent_coef_init=-1", "algo.ent_coef_init=-1"),
    ("algo.ent_coef_init=1e300", "algo.ent_coef_init=1e.300 is outside"),
    ("algo.ent_coef=1e300", "algo.ent_coef=1e.300 is outside"),
    ("algo.ent_coef_lr=0", "algo.ent_coef_lr=0"),
    ("algo.target_entropy=nan", "algo.target_entropy=nan must be auto"),
    ("algo.target_entropy=[1]", "algo.target_entropy=[1] must be auto"),
])
def test_sac_specific_checks(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(resolved(["algo=sac", "env=Pendulum-v1", override]), algorithms())
    for good in ("algo.ent_coef=0.1", "algo.target_entropy=-3", "algo.ent_coef=auto"):
        validate(resolved(["algo=sac", "env=Pendulum-v1", good]), algorithms())


@pytest.mark.parametrize("override, cause", [
    ("algo.lrr=1", "Key 'lrr' not in 'DQNConfig'"),                       # no such key
    ("algo.gamma=abc", "could not be converted to Float"),                # wrong type
    ("seed=1.5", "could not be converted to Integer"),
    ("algo.lr_schedule=cosine", "Invalid value 'cosine'"),                # not one of the choices
    ("algo.train_freq_unit=episodes", "Invalid value 'episodes', expected one of [step, episode]"),
    ("log.progress=loud", "Invalid value 'loud'"),
    ("network.hidden_sizes=[64,x]", "could not be converted to Integer"),
    ("algo.policy_delay=2", "Key 'policy_delay' not in 'DQNConfig'"),    # a TD3 key under DQN
])
def test_the_schema_rejects_wrong_keys_and_types_while_composing(override, cause):
    with pytest.raises(ConfigCompositionException) as error:
        compose_config([override])
    assert cause in f"{error.value} {error.value.__cause__}"


def test_the_schema_types_the_yaml_values():
    cfg = compose_config(["algo=ddpg", "env=Pendulum-v1", "algo.noise.type=ou"])
    assert OmegaConf.get_type(cfg.algo).__name__ == "DDPGConfig" and cfg.algo.noise.type.value == "ou"
    with pytest.raises(ConfigCompositionException, match="algo.noise.type=pink"):
        compose_config(["algo=ddpg", "env=Pendulum-v1", "algo.noise.type=pink"])


def test_resume_may_change_the_budget_but_not_what_was_learned():
    saved = resolved(["algo=td3", "env=Pendulum-v1"])
    assert config_conflicts(saved, resolved(["algo=td3", "env=Pendulum-v1", "total_steps=40000", "eval.every=100",
                                             "checkpoint.keep=5", "log.every=10", "device=cpu"])) == []
    conflicts = config_conflicts(saved, resolved(["algo=ddpg", "env=Pendulum-v1", "network.hidden_sizes=[64]"]))
    assert "algo.name: td3 -> ddpg" in conflicts and "network.hidden_sizes: [256, 256] -> [64]" in conflicts
    assert "algo.policy_delay: 2 -> <absent>" in conflicts
    assert config_conflicts(saved, resolved(["algo=td3", "env=Pendulum-v1", "seed=1"])) == ["seed: 0 -> 1"]


def test_a_resumed_run_made_before_a_key_keeps_its_old_meaning_unless_the_command_sets_it():
    saved = resolved(["algo=td3", "env=Pendulum-v1"])
    del saved["eval"]["num_envs"]   # a run made before eval.num_envs: evaluated on one env
    config = resolved(["algo=td3", "env=Pendulum-v1"])
    assert compat.kept_from_before(saved, config, set()) == {"eval.num_envs": 1} and config["eval"]["num_envs"] == 1
    config = resolved(["algo=td3", "env=Pendulum-v1", "eval.num_envs=4"])   # the command sets it: its value
    assert compat.kept_from_before(saved, config, {"eval.num_envs"}) == {} and config["eval"]["num_envs"] == 4
    config = resolved(["algo=td3", "env=Pendulum-v1"])   # a run that has the key goes on with today's config
    assert compat.kept_from_before(resolved(["algo=td3", "env=Pendulum-v1"]), config, set()) == {}
    assert config["eval"]["num_envs"] == 16


def test_a_run_from_before_a_key_existed_resumes_with_the_keys_old_meaning(monkeypatch):
    # The keys added since checkpoint format 2, with the values that keep what runs made before them did:
    assert compat.ADDED_KEYS == {"network.activation": "relu", "env.normalize.obs": False,
                                 "env.normalize.reward": False, "env.normalize.clip_obs": 10.0,
                                 "env.normalize.clip_reward": 10.0, "algo.use_sde": False,
                                 "algo.sde_sample_freq": -1, "algo.log_std_init": -3.0,   # (SAC's: PPO's came first)
                                 "algo.lr_schedule": "constant",                          # (SAC's: DQN's came first)
                                 # no episode budget, no stop rule, no learning index: runs before them
                                 "total_episodes": None, "stop.window": 100, "stop.mean_return": None,
                                 "stop.eval_return": None, "log.heldout_states": 0,
                                 "seeds": None,   # one seed per run: runs before many seeds as one model
                                 "env.wrappers": [],   # no wrappers of the user's: runs before env.wrappers
                                 # prioritized replay's keys, declared for every off-policy algorithm since
                                 "algo.prioritized": False, "algo.priority_alpha": 0.6, "algo.priority_beta0": 0.4,
                                 "algo.priority_eps": 1e-6,
                                 # images' channel order detected: runs before network.image.channels_first
                                 "network.image.channels_first": None,
                                 # auto: runs before network.image.enabled (uint8 images alike)
                                 "network.image.enabled": "auto",
                                 "network.image.cnn": "nature",   # the Nature CNN: runs before network.image.cnn
                                 # the observation space decides the torso: runs before network.torso
                                 "network.torso._target_": None,
                                 "eval.deterministic": True,   # the mode: runs before eval.deterministic
                                 "eval.num_envs": 1,   # one env, one episode after another: runs before it
                                 # DQN without noisy networks or distributions: runs before them
                                 "algo.noisy": False, "algo.noisy_sigma": 0.5, "algo.distribution": "expected",
                                 "algo.atoms": 51, "algo.v_min": -10.0, "algo.v_max": 10.0, "algo.quantiles": 200,
                                 "algo.adam_eps": 1e-8,
                                 # replay without hindsight relabelling: runs before HER
                                 "algo.her": False, "algo.her_n_sampled_goal": 4,
                                 "algo.her_goal_selection_strategy": "future",
                                 "callbacks": [],   # no callbacks: runs before them
                                 "log.backends": ["tensorboard"]}   # TensorBoard only: runs before log.backends
    old = resolved(["algo=td3", "env=Pendulum-v1"])
    del old["network"]["activation"], old["env"]["normalize"], old["seeds"], old["log"]["heldout_states"]
    del old["env"]["wrappers"], old["network"]["image"], old["network"]["torso"], old["callbacks"]
    assert config_conflicts(old, resolved(["algo=td3", "env=Pendulum-v1"])) == []   # None and 0 alike
    assert config_conflicts(old, resolved(["algo=td3", "env=Pendulum-v1", "network.activation=tanh"])) == [
        "network.activation: relu -> tanh"]
    # the mechanism, as train_freq_unit used it:
    monkeypatch.setattr(compat, "ADDED_KEYS", {"algo.train_freq_unit": "step"})
    saved = resolved(["algo=td3", "env=Pendulum-v1"])
    del saved["algo"]["train_freq_unit"]  # as the config of a run made before the key existed
    assert config_conflicts(saved, resolved(["algo=td3", "env=Pendulum-v1"])) == []
    assert config_conflicts(saved, resolved(["algo=td3", "env=Pendulum-v1", "algo.train_freq_unit=episode"])) == [
        "algo.train_freq_unit: step -> episode"]


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="device='tpu'"):
        resolve_device("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.parametrize("overrides, message", [
    (["algo=ppo", "algo.batch_size=100"], "algo.batch_size=100 does not divide the rollout's 2048 samples"),
    (["algo=ppo", "algo.n_steps=64", "env.num_envs=3", "algo.batch_size=50"], "use algo.batch_size=48 or 64"),
    (["algo=ppo", "total_steps=1000"], "= 2048 env steps per rollout is more than total_steps=1000"),
    (["algo=ppo", "algo.gae_lambda=1.5"], r"algo.gae_lambda=1.5 is outside \[0.0, 1.0\]"),
    (["algo=ppo", "algo.clip_range=0"], r"algo.clip_range=0.0 is outside \(0.0, inf\]"),
    (["algo=ppo", "algo.clip_range_vf=0"], "algo.clip_range_vf=0.0 is outside"),
    (["algo=ppo", "algo.target_kl=-1"], "algo.target_kl=-1.0 is outside"),
    (["algo=ppo", "algo.n_epochs=0"], "algo.n_epochs=0 must be a positive integer"),
    (["algo=ppo", "algo.batch_size=1", "algo.n_steps=4"], "normalises each advantage alone"),
    (["algo=a2c", "algo.n_steps=0"], "algo.n_steps=0 must be a positive integer"),
    (["algo=a2c", "algo.ent_coef=-0.1"], "algo.ent_coef=-0.1 is outside"),
    (["algo=a2c", "algo.vf_coef=-1"], "algo.vf_coef=-1.0 is outside"),
    (["algo=a2c", "algo.max_grad_norm=0"], "algo.max_grad_norm=0.0 is outside"),
    (["algo=a2c", "algo.rms_prop_eps=0"], "algo.rms_prop_eps=0.0 is outside"),
    (["algo=a2c", "algo.log_std_init=50"], r"algo.log_std_init=50.0 is outside \[-20.0, 5.0\]"),
    (["algo=a2c", "algo.lr=0"], "algo.lr=0.0 is outside"),
    (["algo=ppo", "algo.sde_sample_freq=0"], "algo.sde_sample_freq=0 must be a positive number of steps, or -1"),
    (["env.normalize.clip_obs=0"], "env.normalize.clip_obs=0.0 is outside"),
    (["algo=ppo", "env.normalize.clip_reward=-1"], "env.normalize.clip_reward=-1.0 is outside"),
])
def test_on_policy_checks(overrides, message):
    with pytest.raises(ConfigError, match=message):   # (Acrobot: no preset, the algorithms' defaults)
        validate(resolved(["env=Acrobot-v1", *overrides]), algorithms())


def test_on_policy_algorithms_default_to_sb3s_networks_and_presets_pick_their_own():
    image = {"image": {"enabled": "auto", "channels_first": None, "cnn": "nature"}}   # (from the space unless set)
    image = {**image, "torso": {"_target_": None}}   # (network.torso: the observation space decides)
    assert resolved(["algo=ppo"])["network"] == {"hidden_sizes": [64, 64], "activation": "tanh", **image}
    assert resolved(["algo=a2c", "env=Acrobot-v1"])["network"] == {"hidden_sizes": [64, 64], "activation": "tanh",
                                                                   **image}
    assert resolved(["algo=dqn"])["network"]["activation"] == "relu"
    cheetah = resolved(["algo=ppo", "env=HalfCheetah-v5"])
    assert cheetah["network"] == {"hidden_sizes": [256, 256], "activation": "relu", **image}
    assert cheetah["env"]["normalize"]["obs"] and cheetah["env"]["normalize"]["reward"]
    assert resolved(["algo=ppo", "network.activation=relu"])["network"]["activation"] == "relu"
    with pytest.raises(ConfigCompositionException, match="network.activation=gelu"):
        compose_config(["algo=ppo", "network.activation=gelu"])
    with pytest.raises(ConfigCompositionException, match="Could not override 'algo.buffer_size'"):
        compose_config(["algo=ppo", "algo.buffer_size=10"])     # an off-policy key has no place in PPO's schema


@pytest.mark.parametrize("overrides, message", [
    (["algo=ppo", "+algo.n_step=3"], "algo.n_step is not a key of algo=ppo's config; its keys: batch_size,"),
    (["algo=dqn", "+algo.n_setps=3"], "algo.n_setps is not a key of algo=dqn's config"),
    (["+foo=1"], "foo is not a key of the config; its keys: algo, callbacks, checkpoint"),
    (["algo=td3", "env=Pendulum-v1", "+algo.noise.x=1"], "algo.noise.x is not a key of algo.noise; its keys: sigma"),
])
def test_a_key_added_with_plus_must_be_one_the_schema_has(overrides, message):
    # Hydra's `+key=value` adds a key even to a typed config: no code would read it, so it is refused
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate(resolved(overrides), algorithms())
    validate(resolved(["+env.kwargs.max_episode_steps=5"]), algorithms())   # env.kwargs is free-form: gymnasium.make's


def test_a_saved_config_gets_the_keys_added_since_at_their_old_meaning():
    old = resolved(["algo=td3", "env=Pendulum-v1"])
    del old["network"]["activation"], old["env"]["normalize"]
    filled = compat.with_added_keys(old)
    assert filled["network"]["activation"] == "relu" and "normalize" not in filled["env"]   # no section invented
    assert "activation" not in old["network"]                                               # the input is kept


def test_a_refused_resume_names_every_key_a_resume_may_change():
    # The message is built from the list the comparison uses, so a key it accepts (compile, gpu_placement,
    # env.total_steps) is never left out of it.
    from rlexp.commands.accept import check_resumable

    saved = resolved(["algo=td3", "env=Pendulum-v1"])
    bundle = {"config": saved, "step": 0, "device": "cpu"}
    with pytest.raises(ConfigError) as refused:
        check_resumable(bundle, resolved(["algo=td3", "env=Pendulum-v1", "seed=1"]), "resume=x", torch.device("cpu"),
                        finished=False)
    message = str(refused.value)
    assert "seed: 0 -> 1" in message
    for key in ("total_steps", "env.total_steps", "total_episodes", "stop.*", "callbacks", "eval.*", "checkpoint.*",
                "log.*",
                "device", "gpu_placement", "torch_threads", "compile", "compile_mode", "env.step_timeout"):
        assert key in message.split("only ", 1)[1]
    assert compat.may_change().endswith("log.* and checkpoint.*")


def test_every_key_is_documented_where_it_is_defined_and_help_lists_them():
    # Each key's docstring sits under its field in the schema (rlexp/config/schema.py, an algorithm's module):
    # one source for `rlexp train --help` and the README's reference.
    from rlexp.config.docs import describe, undocumented
    from rlexp.config.schema import TrainConfig

    for name, spec in algorithms().items():
        assert undocumented(TrainConfig, spec.schema) == [], name
    text = describe(TrainConfig, algorithms()["td3"].schema)
    assert "  algo.policy_delay (int)\n      critic updates per actor and target update" in text
    assert "  env.normalize.obs (bool)" in text and "  compile_mode (str | null)" in text
    assert "  algo.noise.type (" in text   # nested sections expanded



def test_prioritized_replay_is_a_declared_off_policy_key_that_only_td_reporting_algorithms_take():
    # Every off-policy config declares the replay's keys (the runner reads them typed); an algorithm whose update
    # does not report TD errors back (its registry entry says so) refuses prioritized=true in one line.
    for algo, env in (("td3", "Pendulum-v1"), ("sac", "Pendulum-v1"), ("ddpg", "Pendulum-v1")):
        config = resolved([f"algo={algo}", f"env={env}"])
        assert config["algo"]["prioritized"] is False and config["algo"]["priority_alpha"] == 0.6
        with pytest.raises(ConfigError, match=f"algo.prioritized=true needs an update that reports TD errors back "
                                              f"to the replay, which algo={algo}'s does not; use algo=dqn"):
            validate(resolved([f"algo={algo}", f"env={env}", "algo.prioritized=true"]), algorithms())
    validate(resolved(["algo=dqn", "algo.prioritized=true"]), algorithms())
    with pytest.raises(ConfigError, match="algo.priority_alpha=2"):
        validate(resolved(["algo=td3", "env=Pendulum-v1", "algo.priority_alpha=2"]), algorithms())


def test_a_validated_config_becomes_its_schemas_objects():
    from rlexp.config.schema import Choice, TrainConfig
    from rlexp.config.typed import train_config, typed

    config = resolved(["algo=td3", "env=Pendulum-v1", "env.vectorization=async", "seeds=[1,2]"])
    settings = train_config(config, algorithms()["td3"].schema)
    assert isinstance(settings, TrainConfig) and type(settings.algo).__name__ == "TD3Config"
    assert settings.algo.noise.sigma == config["algo"]["noise"]["sigma"] and settings.seeds == [1, 2]
    # choices are str enums: equal to, and formatted as, the strings they were
    assert isinstance(settings.env.vectorization, Choice) and settings.env.vectorization == "async"
    assert f"{settings.env.vectorization}" == "async" and str(settings.algo.train_freq_unit) == "step"
    # a saved config filled in for another algorithm's keys still reads as this one's schema
    assert typed({**config["algo"], "use_sde": False}, algorithms()["td3"].schema).tau == config["algo"]["tau"]


def test_no_config_file_sets_hydra_mode():
    """`rlexp train` takes the run mode from --multirun without composing the config for it (mode_from_flags): that
    holds while no file of conf/ sets hydra.mode."""
    import yaml

    for path in CONF.rglob("*.yaml"):
        data = yaml.safe_load(path.read_text()) or {}
        hydra = data.get("hydra") if isinstance(data, dict) else None
        assert not (isinstance(hydra, dict) and "mode" in hydra), path


def test_a_run_composes_its_config_once(workdir, monkeypatch):
    from hydra._internal.hydra import Hydra

    from tests.conftest import train_in_process

    composed: list[str] = []
    compose = Hydra.compose_config
    monkeypatch.setattr(Hydra, "compose_config", lambda self, *a, **k: composed.append("x") or compose(self, *a, **k))
    proc = train_in_process(["train", "algo=dqn", "env=CartPole-v1", "total_steps=100", "algo.learning_starts=50",
                             "eval.episodes=1", "log.progress=none", "hydra.run.dir=run"], workdir)
    assert proc.returncode == 0, proc.stderr
    assert len(composed) == 1

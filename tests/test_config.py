"""Config composition for every algo x env pair, presets, precedence, and validation errors."""

import pytest
from omegaconf import OmegaConf

from rlexp.config import ConfigError, resolve_device, validate
from tests.conftest import CONF, compose_config

ALGOS = sorted(p.stem for p in (CONF / "algo").glob("*.yaml"))
ENVS = sorted(p.stem for p in (CONF / "env").glob("*.yaml"))
DISCRETE = {"CartPole-v1", "Acrobot-v1"}


def resolved(overrides: list[str]) -> dict:
    return OmegaConf.to_container(compose_config(overrides), resolve=True)


def test_the_config_groups_hold_what_the_docs_promise():
    assert ALGOS == ["ddpg", "dqn", "td3"]
    assert {"CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0"} <= set(ENVS)


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("algo", ALGOS)
def test_every_algo_env_pair_composes_and_validates(algo, env):
    cfg = resolved([f"algo={algo}", f"env={env}"])
    assert cfg["algo"]["name"] == algo and cfg["env"]["id"] == env
    validate(cfg)  # value checks pass for every pair; space fit is checked against the env (test_envs)


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
    ("algo.tau=0", "algo.tau=0 is outside (0.0, 1.0]"),
    ("algo.batch_size=0", "algo.batch_size=0 must be a positive integer"),
    ("algo.batch_size=200000", "exceeds algo.buffer_size"),
    ("algo.learning_starts=60000", "algo.learning_starts=60000 >= total_steps=50000"),
    ("algo.lr=-1", "algo.lr=-1 is outside (0.0, inf]"),
    ("algo.exploration_final_eps=2", "algo.exploration_final_eps=2"),
    ("network.hidden_sizes=[]", "network.hidden_sizes=[] must be a non-empty list"),
    ("eval.episodes=0", "eval.episodes=0 must be a positive integer"),
    ("log.progress=loud", "log.progress='loud' is unknown"),
])
def test_bad_values_fail_with_the_key_and_value(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace("]", r"\]")):
        validate(resolved([override]))


def test_td3_specific_checks():
    with pytest.raises(ConfigError, match="algo.policy_delay=0"):
        validate(resolved(["algo=td3", "env=Pendulum-v1", "algo.policy_delay=0"]))
    with pytest.raises(ConfigError, match="algo.noise.type='pink'"):
        validate(resolved(["algo=ddpg", "env=Pendulum-v1", "algo.noise.type=pink"]))


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="device='tpu'"):
        resolve_device("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")

"""Property-based tests (hypothesis) for the replay buffer and the config checks in `validate`.

The buffer is checked against a model: the plain list of every transition added, oldest first.
`validate` is checked against an oracle written from the documented bounds, starting from the
resolved default configs of `algo=dqn` (CartPole-v1) and `algo=td3 env=Pendulum-v1`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlexp.agents.registry import algorithms
from rlexp.commands.train import resolved_config
from rlexp.config.checks import SEED_LIMIT
from rlexp.config.validate import EVAL_SEED_OFFSET, MAX_STEPS, validate
from rlexp.errors import ConfigError
from rlexp.replay import ReplayBatch, ReplayBuffer
from tests.conftest import compose_config

CPU = torch.device("cpu")
GAMMA = 0.99  # ReplayBuffer's default: a sampled transition's discount is GAMMA * (1 - terminated)
FIELDS = ("observations", "actions", "rewards", "next_observations", "discounts", "indices")  # of a batch
# The storage; the model adds no time limits, so an episode ends where it terminates.
STORED = ("observations", "actions", "rewards", "next_observations", "terminations", "episode_ends")


def fast(max_examples: int) -> settings:
    """Few examples (the whole file runs in seconds) and no deadline (the first torch call is slow)."""
    return settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------------------
# Replay buffer: model, scenarios and helpers
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Transition:
    obs: np.ndarray
    action: int | np.ndarray
    reward: float
    next_obs: np.ndarray
    terminated: bool


@dataclass(frozen=True)
class Scenario:
    """A buffer's shape and the transitions to add to it, in order (rewards are unique)."""
    capacity: int
    obs_shape: tuple[int, ...]
    action_shape: tuple[int, ...]
    discrete: bool
    seed: int
    transitions: list[Transition]

    def buffer(self, *, stage: bool, capacity: int | None = None, seed: int | None = None) -> ReplayBuffer:
        return ReplayBuffer(self.capacity if capacity is None else capacity, self.obs_shape, self.action_shape,
                            self.discrete, CPU, seed=self.seed if seed is None else seed, stage_on_host=stage)

    def transitions_like(self, count: int, seed: int, reward_offset: float) -> list[Transition]:
        """More transitions of the same shapes, rewards shifted clear of the scenario's own."""
        return make_transitions(count, self.obs_shape, self.action_shape, self.discrete, seed, reward_offset)


def make_transitions(count: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...], discrete: bool,
                     seed: int, reward_offset: float = 0.0) -> list[Transition]:
    rng = np.random.default_rng(seed)
    rewards = rng.permutation(count).astype(np.float64) + reward_offset  # unique, exact in float32, unordered
    out = []
    for i in range(count):
        action = int(rng.integers(0, 5)) if discrete else rng.uniform(-1, 1, action_shape).astype(np.float32)
        out.append(Transition(obs=rng.standard_normal(obs_shape).astype(np.float32), action=action,
                              reward=float(rewards[i]), next_obs=rng.standard_normal(obs_shape).astype(np.float32),
                              terminated=bool(rng.integers(0, 2))))
    return out


@st.composite
def scenarios(draw: st.DrawFn, max_capacity: int = 20, max_adds: int = 60) -> Scenario:
    capacity = draw(st.integers(1, max_capacity))
    obs_shape = draw(st.sampled_from([(1,), (3,), (2, 2)]))
    discrete = draw(st.booleans())
    action_shape = () if discrete else (draw(st.integers(1, 3)),)
    count = draw(st.integers(0, max_adds))
    seed = draw(st.integers(0, 2**16))
    return Scenario(capacity, obs_shape, action_shape, discrete, seed,
                    make_transitions(count, obs_shape, action_shape, discrete, seed))


def add(buffer: ReplayBuffer, t: Transition) -> None:
    """One transition of the buffer's single env: each argument with a leading env axis of 1."""
    buffer.add(t.obs[None], np.asarray(t.action)[None], np.array([t.reward], np.float32), t.next_obs[None],
               np.array([t.terminated]), np.array([False]))


def filled(scenario: Scenario, *, stage: bool) -> ReplayBuffer:
    buffer = scenario.buffer(stage=stage)
    for t in scenario.transitions:
        add(buffer, t)
    return buffer


def tail(items: list[Transition], count: int) -> list[Transition]:
    """The newest `count` items (xs[-0:] would be all of them)."""
    return items[len(items) - count:]


def as_rows(transitions: list[Transition], scenario: Scenario) -> dict[str, torch.Tensor]:
    """The model's transitions in the layout of `state_dict()["transitions"]`."""
    action_dtype = torch.int64 if scenario.discrete else torch.float32
    if not transitions:
        return {"observations": torch.zeros((0, *scenario.obs_shape)),
                "actions": torch.zeros((0, *scenario.action_shape), dtype=action_dtype),
                "rewards": torch.zeros(0), "next_observations": torch.zeros((0, *scenario.obs_shape)),
                "terminations": torch.zeros(0), "episode_ends": torch.zeros(0)}
    return {"observations": torch.from_numpy(np.stack([t.obs for t in transitions])),
            "actions": torch.tensor(np.stack([np.asarray(t.action) for t in transitions]), dtype=action_dtype),
            "rewards": torch.tensor([t.reward for t in transitions], dtype=torch.float32),
            "next_observations": torch.from_numpy(np.stack([t.next_obs for t in transitions])),
            "terminations": torch.tensor([float(t.terminated) for t in transitions], dtype=torch.float32),
            "episode_ends": torch.tensor([float(t.terminated) for t in transitions], dtype=torch.float32)}


def assert_rows_equal(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert set(actual) == set(STORED)
    for key in STORED:
        assert actual[key].dtype == expected[key].dtype, key
        assert torch.equal(actual[key], expected[key]), key


def assert_row_is(rows: dict[str, torch.Tensor], i: int, t: Transition) -> None:
    """Row `i` of every field (of a batch or of the storage) holds transition `t`."""
    assert torch.equal(rows["observations"][i], torch.from_numpy(t.obs))
    assert torch.equal(rows["next_observations"][i], torch.from_numpy(t.next_obs))
    assert rows["actions"][i].tolist() == np.asarray(t.action).tolist()
    assert rows["rewards"][i].item() == t.reward
    if "terminations" in rows:  # the storage
        assert rows["terminations"][i].item() == float(t.terminated)
    else:  # a batch carries the termination in its discount: no bootstrap past a terminal state
        assert rows["discounts"][i].item() == pytest.approx(GAMMA * (1.0 - float(t.terminated)))


def assert_holds_exactly(buffer: ReplayBuffer, expected: list[Transition]) -> None:
    """The occupied slots of the raw storage hold `expected`, each once, in any slot order."""
    by_reward = {t.reward: t for t in expected}
    assert len(buffer) == buffer.ring.size == len(expected)  # one env: a row is one transition
    slot_rewards = buffer.storage["rewards"][: len(buffer)].tolist()
    assert sorted(slot_rewards) == sorted(by_reward)
    for slot, reward in enumerate(slot_rewards):
        assert_row_is(buffer.storage, slot, by_reward[reward])


def assert_batch_from(batch: ReplayBatch, stored: list[Transition], k: int, scenario: Scenario) -> None:
    """Every sampled row is one whole stored transition."""
    by_reward = {t.reward: t for t in stored}
    rows = batch._asdict()
    assert batch.observations.shape == (k, *scenario.obs_shape)
    assert batch.next_observations.shape == (k, *scenario.obs_shape)
    assert batch.actions.shape == (k, *scenario.action_shape)
    assert batch.rewards.shape == batch.discounts.shape == batch.indices.shape == (k,)
    for i, reward in enumerate(batch.rewards.tolist()):
        assert reward in by_reward, f"sampled reward {reward} is not stored"
        assert_row_is(rows, i, by_reward[reward])


def assert_batches_equal(a: ReplayBatch, b: ReplayBatch) -> None:
    for key in FIELDS:
        assert torch.equal(getattr(a, key), getattr(b, key)), key


# --------------------------------------------------------------------------------------------------
# Replay buffer properties
# --------------------------------------------------------------------------------------------------

@fast(150)
@given(scenario=scenarios())
def test_buffer_holds_the_newest_min_n_capacity_transitions(scenario: Scenario) -> None:
    """Property 1: after n adds into capacity c, exactly the last min(n, c) transitions are stored, whole."""
    buffer = filled(scenario, stage=False)
    n, c = len(scenario.transitions), scenario.capacity
    assert len(buffer) == min(n, c)
    assert buffer.pos == n % c
    assert_holds_exactly(buffer, tail(scenario.transitions, min(n, c)))
    assert_rows_equal(buffer.state_dict()["transitions"], as_rows(tail(scenario.transitions, min(n, c)), scenario))


@fast(150)
@given(scenario=scenarios(), k=st.integers(1, 64), stage=st.booleans())
def test_sample_returns_only_stored_whole_transitions(scenario: Scenario, k: int, stage: bool) -> None:
    """Property 2: sample(k) returns k rows, each a stored transition; an empty buffer raises RuntimeError."""
    buffer = filled(scenario, stage=stage)
    stored = tail(scenario.transitions, min(len(scenario.transitions), scenario.capacity))
    if not stored:
        with pytest.raises(RuntimeError):
            buffer.sample(k)
        return
    batch = buffer.sample(k)
    assert_batch_from(batch, stored, k, scenario)
    assert torch.equal(buffer.storage["rewards"][batch.indices], batch.rewards)  # the slots it came from


@fast(150)
@given(scenario=scenarios(), sample_after=st.lists(st.booleans(), max_size=60), k=st.integers(1, 8))
def test_host_staging_stores_what_direct_writes_store(scenario: Scenario, sample_after: list[bool], k: int) -> None:
    """Property 3: stage_on_host=True ends with the same contents (and samples) as direct writes."""
    direct, staged = scenario.buffer(stage=False), scenario.buffer(stage=True)
    for i, t in enumerate(scenario.transitions):
        add(direct, t)
        add(staged, t)
        assert (direct.pos, len(direct)) == (staged.pos, len(staged))
        if i < len(sample_after) and sample_after[i]:  # a sample flushes the staging area mid-stream
            assert_batches_equal(direct.sample(k), staged.sample(k))
    direct_state, staged_state = direct.state_dict(), staged.state_dict()
    assert_rows_equal(staged_state["transitions"], direct_state["transitions"])
    assert (staged_state["pos"], staged_state["rows"]) == (direct_state["pos"], direct_state["rows"])
    for key in STORED:  # after the flush, every slot agrees too
        assert torch.equal(staged.storage[key], direct.storage[key]), key
    if len(direct):
        assert_batches_equal(direct.sample(k), staged.sample(k))


@fast(120)
@given(scenario=scenarios(), warmup_samples=st.integers(0, 3), stage_old=st.booleans(), stage_new=st.booleans(),
       rounds=st.integers(0, 25), k=st.integers(1, 8))
def test_state_round_trip_with_same_capacity_continues_exactly(scenario: Scenario, warmup_samples: int,
                                                              stage_old: bool, stage_new: bool, rounds: int,
                                                              k: int) -> None:
    """Property 4a: a same-capacity buffer loaded from state_dict() samples the same batches from then on,
    and identical adds keep the two identical."""
    original = filled(scenario, stage=stage_old)
    for _ in range(warmup_samples if len(original) else 0):
        original.sample(k)  # advance the generator: the state must carry its position, not just the seed
    restored = scenario.buffer(stage=stage_new, seed=scenario.seed + 1)
    restored.load_state_dict(original.state_dict())
    assert (len(restored), restored.pos) == (len(original), original.pos)
    more = scenario.transitions_like(rounds, scenario.seed + 2, reward_offset=1000.0)
    for t in [None, *more]:
        if t is not None:
            add(original, t)
            add(restored, t)
        if len(original):
            assert_batches_equal(original.sample(k), restored.sample(k))
    a, b = original.state_dict(), restored.state_dict()
    assert_rows_equal(b["transitions"], a["transitions"])
    assert (a["pos"], a["rows"], a["num_envs"]) == (b["pos"], b["rows"], b["num_envs"])
    assert torch.equal(a["generator"], b["generator"])


@fast(120)
@given(scenario=scenarios(), new_capacity=st.integers(1, 25), stage_new=st.booleans(), rounds=st.integers(0, 30))
def test_state_loads_into_another_capacity_keeping_the_newest(scenario: Scenario, new_capacity: int,
                                                             stage_new: bool, rounds: int) -> None:
    """Property 4b: loading into capacity c2 keeps the newest min(size, c2) transitions, oldest first,
    and the buffer then behaves like a c2 ring that had received exactly those."""
    original = filled(scenario, stage=False)
    kept = tail(scenario.transitions, min(len(original), new_capacity))
    resized = scenario.buffer(stage=stage_new, capacity=new_capacity)
    resized.load_state_dict(original.state_dict())
    assert len(resized) == len(kept)
    assert_rows_equal(resized.state_dict()["transitions"], as_rows(kept, scenario))
    assert_holds_exactly(resized, kept)
    more = scenario.transitions_like(rounds, scenario.seed + 3, reward_offset=1000.0)
    for t in more:
        add(resized, t)
    expected = tail(kept + more, min(len(kept) + len(more), new_capacity))
    assert_rows_equal(resized.state_dict()["transitions"], as_rows(expected, scenario))
    assert_holds_exactly(resized, expected)  # state_dict() above flushed any staged rows
    if expected:
        assert_batch_from(resized.sample(16), expected, 16, scenario)


# --------------------------------------------------------------------------------------------------
# validate: base configs, key specs and the oracle
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bases() -> dict[str, dict[str, Any]]:
    """The resolved default configs, composed once (composing is slow); tests mutate deep copies."""
    return {"dqn": resolved_config(compose_config(["algo=dqn"])),
            "td3": resolved_config(compose_config(["algo=td3", "env=Pendulum-v1"]))}


@dataclass(frozen=True)
class RangeKey:
    """A float key valid on [low, high] (or (low, ...) when not low_inclusive; high None: unbounded), and null
    where `nullable` (DQN's max_grad_norm: no clipping)."""
    path: str
    low: float
    high: float | None
    low_inclusive: bool = True
    nullable: bool = False

    def accepts(self, value: float) -> bool:
        above = value > self.low or (self.low_inclusive and value == self.low)
        return above and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class IntKey:
    """An integer key valid from `minimum` up (0: non-negative, 1: positive, None: any integer) and below `limit`
    (None: unbounded), plus `special` values below the minimum that mean something (gradient_steps=-1)."""
    path: str
    minimum: int | None
    special: tuple[int, ...] = ()
    limit: int | None = None

    def accepts(self, value: int) -> bool:
        in_range = (self.minimum is None or value >= self.minimum) and (self.limit is None or value < self.limit)
        return in_range or value in self.special


COMMON_RANGES = [RangeKey("algo.gamma", 0.0, 1.0), RangeKey("algo.tau", 0.0, 1.0, low_inclusive=False)]
RANGE_KEYS: dict[str, list[RangeKey]] = {
    "dqn": [*COMMON_RANGES, RangeKey("algo.lr", 0.0, None, False), RangeKey("algo.exploration_fraction", 0.0, 1.0),
            RangeKey("algo.exploration_initial_eps", 0.0, 1.0), RangeKey("algo.exploration_final_eps", 0.0, 1.0),
            RangeKey("algo.max_grad_norm", 0.0, None, False, nullable=True),
            RangeKey("algo.noisy_sigma", 0.0, None, False), RangeKey("algo.adam_eps", 0.0, None, False)],
    "td3": [*COMMON_RANGES, RangeKey("algo.actor_lr", 0.0, None, False), RangeKey("algo.critic_lr", 0.0, None, False),
            RangeKey("algo.noise.sigma", 0.0, None), RangeKey("algo.noise.theta", 0.0, None, False),
            RangeKey("algo.target_noise", 0.0, None), RangeKey("algo.target_noise_clip", 0.0, None)],
}
# total_steps: step counters are int64 on the device; seed: numpy's seeds lie in [0, 2**32), and rlexp also seeds
# the evaluation env with seed + 10000.
SEED = IntKey("seed", 0, limit=SEED_LIMIT - EVAL_SEED_OFFSET)
COMMON_INTS = [IntKey("total_steps", 1, limit=MAX_STEPS), IntKey("algo.batch_size", 1), IntKey("algo.buffer_size", 1),
               IntKey("algo.learning_starts", 0), IntKey("algo.train_freq", 1), IntKey("algo.gradient_steps", 1, (-1,)),
               IntKey("algo.n_step", 1), IntKey("env.num_envs", 1), SEED,
               IntKey("eval.every", 0), IntKey("eval.episodes", 1), IntKey("checkpoint.every", 0),
               IntKey("checkpoint.keep", 1), IntKey("log.every", 1), IntKey("torch_threads", 0)]
INT_KEYS: dict[str, list[IntKey]] = {"dqn": [*COMMON_INTS, IntKey("algo.target_update_interval", 1),
                                             IntKey("algo.atoms", 2), IntKey("algo.quantiles", 1)],
                                     "td3": [*COMMON_INTS, IntKey("algo.policy_delay", 1)]}
RANGE_CASES = [(base, spec) for base, specs in RANGE_KEYS.items() for spec in specs]
INT_CASES = [(base, spec) for base, specs in INT_KEYS.items() for spec in specs]


def case_id(case: Any) -> str:
    return case.path if isinstance(case, (RangeKey, IntKey)) else str(case)


def with_value(cfg: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `cfg` with the dotted `path` set to `value`."""
    out = copy.deepcopy(cfg)
    *parents, leaf = path.split(".")
    node = out
    for part in parents:
        node = node[part]
    node[leaf] = value
    return out


def cross_fields_hold(cfg: dict[str, Any]) -> bool:
    """batch_size <= buffer_size, learning_starts < total_steps, num_envs <= total_steps, and episode rounds with
    one env only (all ints by the time this is asked)."""
    algo = cfg["algo"]
    return (algo["batch_size"] <= algo["buffer_size"] and algo["learning_starts"] < cfg["total_steps"]
            and cfg["env"]["num_envs"] <= cfg["total_steps"]
            and (algo["train_freq_unit"] == "step" or cfg["env"]["num_envs"] == 1))


def outcome(cfg: dict[str, Any]) -> ConfigError | None:
    """None when validate accepts, the ConfigError when it rejects; any other exception propagates."""
    try:
        validate(cfg, algorithms())
    except ConfigError as error:
        return error
    return None


def assert_verdict(cfg: dict[str, Any], should_accept: bool, key: str) -> None:
    error = outcome(cfg)
    if should_accept:
        assert error is None, f"rejected a valid config: {error}"
    else:
        assert error is not None, f"accepted an invalid {key}"
        message = str(error)
        assert key in message and "\n" not in message, message


def edge_values(spec: RangeKey) -> list[float]:
    """The bounds, the floats right next to them, signed zeros and the smallest subnormals."""
    points = [spec.low] + ([spec.high] if spec.high is not None else [])
    edges = [-0.0, 0.0, 5e-324, -5e-324, 1.0, -1.0, 1e308, -1e308, 0, 1, -1]
    for p in points:
        edges += [p, math.nextafter(p, math.inf), math.nextafter(p, -math.inf)]
    return edges


def range_values(spec: RangeKey) -> st.SearchStrategy[float]:
    return st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64), st.sampled_from(edge_values(spec)),
                     st.floats(-2.0, 2.0))


# --------------------------------------------------------------------------------------------------
# validate properties
# --------------------------------------------------------------------------------------------------

def test_the_default_configs_are_valid(bases: dict[str, dict[str, Any]]) -> None:
    """The starting points of every property below pass validate untouched."""
    for cfg in bases.values():
        validate(cfg, algorithms())


@pytest.mark.parametrize(("base", "spec"), RANGE_CASES, ids=case_id)
@fast(60)
@given(data=st.data())
def test_float_keys_accept_exactly_their_interval(bases: dict[str, dict[str, Any]], base: str, spec: RangeKey,
                                                  data: st.DataObject) -> None:
    """Property 5 (floats): for any finite value, validate accepts iff it lies in the key's interval
    (gamma [0, 1], tau (0, 1], learning rates and max_grad_norm > 0, ...); rejections name the key."""
    value = data.draw(range_values(spec), label=spec.path)
    assert_verdict(with_value(bases[base], spec.path, value), spec.accepts(value), spec.path)


@pytest.mark.parametrize(("base", "spec"), INT_CASES, ids=case_id)
@fast(40)
@given(data=st.data())
def test_integer_keys_accept_exactly_their_range(bases: dict[str, dict[str, Any]], base: str, spec: IntKey,
                                                 data: st.DataObject) -> None:
    """Property 5 (ints): positive (or non-negative) integer keys, including 0 and negatives, with the
    cross-field rules applied when the mutated key takes part in one; rejections name the key."""
    value = data.draw(st.one_of(st.integers(-3, 3), st.integers(-10**6, 10**6), st.integers(-2**70, 2**70)),
                      label=spec.path)
    cfg = with_value(bases[base], spec.path, value)
    assert_verdict(cfg, spec.accepts(value) and cross_fields_hold(cfg), spec.path)


@pytest.mark.parametrize("base", ["dqn", "td3"])
@fast(100)
@given(batch_size=st.integers(1, 10**6), buffer_size=st.integers(1, 10**6))
def test_batch_size_must_not_exceed_buffer_size(bases: dict[str, dict[str, Any]], base: str, batch_size: int,
                                                buffer_size: int) -> None:
    """Property 5 (cross-field): batch_size <= buffer_size, whatever the two are."""
    cfg = with_value(with_value(bases[base], "algo.batch_size", batch_size), "algo.buffer_size", buffer_size)
    assert_verdict(cfg, batch_size <= buffer_size, "algo.batch_size")


@pytest.mark.parametrize("base", ["dqn", "td3"])
@fast(100)
@given(learning_starts=st.integers(0, 10**6), total_steps=st.integers(1, 10**6))
def test_learning_starts_must_precede_total_steps(bases: dict[str, dict[str, Any]], base: str, learning_starts: int,
                                                  total_steps: int) -> None:
    """Property 5 (cross-field): learning_starts < total_steps, whatever the two are."""
    cfg = with_value(with_value(bases[base], "algo.learning_starts", learning_starts), "total_steps", total_steps)
    cfg["algo"]["batch_size"] = cfg["algo"]["buffer_size"] = 1  # keep the other cross-field rule satisfied
    assert_verdict(cfg, learning_starts < total_steps, "algo.learning_starts")


JUNK = st.one_of(st.none(), st.booleans(), st.text(max_size=8), st.integers(), st.floats(),
                 st.lists(st.integers(), max_size=4))
JUNK_CASES: list[tuple[str, RangeKey | IntKey]] = [*RANGE_CASES, *INT_CASES]  # INT_CASES hold seed


@pytest.mark.parametrize(("base", "spec"), JUNK_CASES, ids=case_id)
@fast(40)
@given(value=JUNK)
def test_junk_at_a_numeric_key_is_a_config_error_or_valid(bases: dict[str, dict[str, Any]], base: str,
                                                         spec: RangeKey | IntKey, value: Any) -> None:
    """Property 6: any JSON-like value at a numeric key gives a ConfigError naming the key, or passes only
    when it is a valid number; a bool is never taken for a number, NaN or infinity never for a setting."""
    cfg = with_value(bases[base], spec.path, value)
    error = outcome(cfg)  # anything but a ConfigError escapes and fails the test
    if isinstance(value, bool):
        should_accept = False
    elif value is None and isinstance(spec, RangeKey) and spec.nullable:
        should_accept = True
    elif isinstance(spec, IntKey):
        should_accept = isinstance(value, int) and spec.accepts(value) and cross_fields_hold(cfg)
    elif isinstance(value, float) and not math.isfinite(value):
        should_accept = False  # NaN and infinity are refused at every float key
    else:
        should_accept = isinstance(value, (int, float)) and spec.accepts(value)
    if should_accept:
        assert error is None, f"rejected {spec.path}={value!r}: {error}"
    else:
        assert error is not None, f"accepted {spec.path}={value!r}"
        assert spec.path in str(error) and "\n" not in str(error), str(error)


def accepted_at(bases: dict[str, dict[str, Any]], cases: list[tuple[str, RangeKey]], value: float) -> list[str]:
    """The keys (as base:path) at which validate accepts `value`."""
    return [f"{base}:{spec.path}" for base, spec in cases if outcome(with_value(bases[base], spec.path, value)) is None]


def test_nan_at_a_float_key_is_rejected(bases: dict[str, dict[str, Any]]) -> None:
    """NaN lies in no interval, so validate must reject it at every float key (gamma, tau, lrs, noise, ...)."""
    assert accepted_at(bases, RANGE_CASES, math.nan) == []


def test_infinity_at_a_float_key_is_rejected(bases: dict[str, dict[str, Any]]) -> None:
    """A learning rate (or any float setting) must be finite: lr=inf would make the first update non-finite."""
    assert accepted_at(bases, RANGE_CASES, math.inf) == []
    assert accepted_at(bases, RANGE_CASES, -math.inf) == []

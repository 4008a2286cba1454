"""The sum tree for proportional prioritized replay: exact sums, proportional and stratified sampling, restore."""

from __future__ import annotations

import io
import math

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rlexp.replay.sumtree import SumTree

CPU = torch.device("cpu")
DEVICES = [CPU] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def fast(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tree_with(priorities: list[float], device: torch.device = CPU) -> SumTree:
    tree = SumTree(len(priorities), device)
    tree.update(torch.arange(len(priorities)), torch.tensor(priorities, dtype=torch.float64))
    return tree


def generator(seed: int, device: torch.device = CPU) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def brute_force(leaves: list[float], first_leaf: int) -> tuple[list[float], list[float]]:
    """Every node's sum and smallest positive priority, rebuilt bottom-up from the leaves with Python floats."""
    padded = leaves + [0.0] * (first_leaf - len(leaves))
    sums = [0.0] * first_leaf + padded
    mins = [math.inf] * first_leaf + [p if p > 0 else math.inf for p in padded]
    for node in range(first_leaf - 1, 0, -1):
        sums[node] = sums[2 * node] + sums[2 * node + 1]
        mins[node] = min(mins[2 * node], mins[2 * node + 1])
    return sums[1:], mins[1:]


# Priorities as PER produces them (|TD error| + eps), with zeros and extreme ratios mixed in.
priority = st.one_of(st.just(0.0), st.sampled_from([1e-12, 1e-6, 1.0, 1e6]),
                     st.floats(min_value=1e-12, max_value=1e6, allow_nan=False, allow_infinity=False))


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_hand_checked_small_tree(device):
    tree = tree_with([1.0, 2.0, 0.0, 3.0, 4.0], device)
    assert tree.first_leaf == 8 and tree.depth == 3
    assert tree.total().item() == 10.0 and tree.total().dtype == torch.float64 and tree.total().dim() == 0
    assert tree.get(torch.tensor([4, 2, 0], device=device)).tolist() == [4.0, 0.0, 1.0]
    assert tree.min_positive().item() == 1.0
    assert tree.sums[1:8].tolist() == [10.0, 6.0, 4.0, 3.0, 3.0, 4.0, 0.0]

    # Slot 4 -> 0.5, and slot 0 twice in one call: the last value (0.25) wins.
    tree.update(torch.tensor([4, 0, 0], device=device), torch.tensor([0.5, 7.0, 0.25], device=device))
    assert tree.get(torch.arange(5, device=device)).tolist() == [0.25, 2.0, 0.0, 3.0, 0.5]
    assert tree.sums[1:8].tolist() == [5.75, 5.25, 0.5, 2.25, 3.0, 0.5, 0.0]
    assert tree.mins[1:8].tolist() == [0.25, 0.25, 0.5, 0.25, 3.0, 0.5, math.inf]
    assert tree.total().item() == 5.75 and tree.min_positive().item() == 0.25


def test_duplicates_last_wins_in_any_order_and_large_batches():
    tree = SumTree(10, CPU)
    slots = torch.tensor([3, 7, 3, 3, 7, 1] * 100 + [3, 1, 7])
    values = torch.rand(len(slots), dtype=torch.float64) + 1.0
    values[-3:] = torch.tensor([5.0, 6.0, 7.0], dtype=torch.float64)
    tree.update(slots, values)
    assert tree.get(torch.tensor([1, 3, 7])).tolist() == [6.0, 5.0, 7.0]
    assert tree.total().item() == 18.0


@fast(100)
@given(capacity=st.integers(1, 100), data=st.data())
def test_inner_nodes_equal_brute_force_recomputation(capacity, data):
    tree = SumTree(capacity, CPU)
    leaves = [0.0] * capacity
    for _ in range(data.draw(st.integers(1, 5))):
        slots = data.draw(st.lists(st.integers(0, capacity - 1), min_size=1, max_size=2 * capacity + 5))
        values = data.draw(st.lists(priority, min_size=len(slots), max_size=len(slots)))
        tree.update(torch.tensor(slots), torch.tensor(values, dtype=torch.float64))
        for slot, value in zip(slots, values):
            leaves[slot] = value
        sums, mins = brute_force(leaves, tree.first_leaf)
        assert tree.sums[1:].tolist() == sums  # exactly: recomputed from the children, never adjusted by deltas
        assert tree.mins[1:].tolist() == mins
    assert tree.get(torch.arange(capacity)).tolist() == leaves
    assert tree.total().item() == pytest.approx(math.fsum(leaves), rel=1e-12, abs=0.0)
    assert tree.min_positive().item() == min([p for p in leaves if p > 0], default=math.inf)


LARGEST_BELOW_ONE = 1.0 - 2.0**-53


def rand_pinned_to(value: float):
    """A stand-in for torch.rand whose every draw is `value`: the ends of [0, 1), where rounding bites."""
    def rand(*size, generator=None, **kwargs):
        return torch.full(size, value, **kwargs)
    return rand


@fast(150)
@given(priorities=st.lists(priority, min_size=1, max_size=70).filter(lambda ps: any(p > 0 for p in ps)),
       batch_size=st.integers(1, 600), seed=st.integers(0, 2**32 - 1),
       pinned=st.sampled_from([None, None, 0.0, LARGEST_BELOW_ONE]))
@example(priorities=[1e6, 1e-12, 0.0, 0.0, 0.0], batch_size=600, seed=0, pinned=None)
@example(priorities=[0.0, 0.0, 0.0, 1e-12], batch_size=600, seed=1, pinned=None)
@example(priorities=[1e-12, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1e6], batch_size=511, seed=2, pinned=None)
@example(priorities=[1e6] * 7 + [1e-12, 0.0], batch_size=600, seed=3, pinned=None)
@example(priorities=[0.1] * 33 + [0.0] * 30, batch_size=97, seed=4, pinned=None)
@example(priorities=[1.0, 2.0, 0.0], batch_size=2, seed=0, pinned=LARGEST_BELOW_ONE)
@example(priorities=[0.0, 0.0, 0.0, 5.0, 0.0], batch_size=3, seed=0, pinned=0.0)
def test_sample_never_returns_zero_priority_or_padding(priorities, batch_size, seed, pinned):
    tree = tree_with(priorities)
    with pytest.MonkeyPatch.context() as patch:
        if pinned is not None:
            patch.setattr(torch, "rand", rand_pinned_to(pinned))
        indices = tree.sample(batch_size, generator(seed))
    assert indices.dtype == torch.int64 and indices.shape == (batch_size,)
    assert bool(((indices >= 0) & (indices < len(priorities))).all())
    assert bool((tree.get(indices) > 0).all())


def test_sample_guards_a_value_rounded_onto_the_total(monkeypatch):
    # Two segments of [0, 3): the second draw, pinned just below 1, rounds to (1 + 1) * 1.5 == 3.0 == total,
    # which without the guard descends past slot 1 into the empty right half (slot 2, then padding slot 3).
    tree = tree_with([1.0, 2.0, 0.0])
    monkeypatch.setattr(torch, "rand", rand_pinned_to(LARGEST_BELOW_ONE))
    assert tree.sample(2, generator(0)).tolist() == [1, 1]


@pytest.mark.parametrize("batch_size, calls", [(50, 4000), (1, 10_000)])
def test_sampling_frequencies_match_priority_over_total(batch_size, calls):
    priorities = [0.5, 1.0, 0.0, 2.5, 4.0, 2.0]
    tree = tree_with(priorities)
    g = generator(0)
    draws = torch.cat([tree.sample(batch_size, g) for _ in range(calls)])
    frequencies = torch.bincount(draws, minlength=len(priorities)).double() / len(draws)
    expected = torch.tensor(priorities, dtype=torch.float64) / sum(priorities)
    assert frequencies[2].item() == 0.0
    assert torch.allclose(frequencies, expected, rtol=0.0, atol=0.01), (frequencies, expected)


@fast(60)
@given(capacity=st.integers(1, 300), value=st.sampled_from([1.0, 0.1, 3.7, 1e-9, 1e6]), seed=st.integers(0, 1000))
def test_stratification_draws_each_equal_slot_once(capacity, value, seed):
    tree = tree_with([value] * capacity)
    assert sorted(tree.sample(capacity, generator(seed)).tolist()) == list(range(capacity))


def test_same_seed_same_samples():
    tree = tree_with([float(i % 4) for i in range(37)])
    a, b = generator(7), generator(7)
    for _ in range(5):
        assert torch.equal(tree.sample(64, a), tree.sample(64, b))
    assert not torch.equal(tree.sample(64, generator(7)), tree.sample(64, generator(8)))


def test_state_dict_round_trip_restores_total_get_and_samples():
    torch.manual_seed(0)
    tree = SumTree(1000, CPU)
    for _ in range(10):
        tree.update(torch.randint(1000, (128,)), torch.rand(128) ** 4)
    state = tree.state_dict()
    assert set(state) == {"priorities"} and state["priorities"].shape == (1000,)
    assert state["priorities"].is_contiguous() and state["priorities"].device == CPU
    buffer = io.BytesIO()
    torch.save(state, buffer)
    tree.update(torch.tensor([0]), torch.tensor([123.0]))  # the saved state is a copy, not a view
    tree.update(torch.tensor([0]), state["priorities"][:1])
    buffer.seek(0)

    restored = SumTree(1000, CPU)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored.sums, tree.sums) and torch.equal(restored.mins, tree.mins)
    assert torch.equal(restored.total(), tree.total())
    assert torch.equal(restored.min_positive(), tree.min_positive())
    assert torch.equal(restored.get(torch.arange(1000)), tree.get(torch.arange(1000)))
    a, b = generator(3), generator(3)
    for _ in range(3):
        assert torch.equal(restored.sample(256, a), tree.sample(256, b))


def test_load_state_dict_rejects_another_capacity():
    with pytest.raises(ValueError, match="slots"):
        SumTree(8, CPU).load_state_dict(tree_with([1.0] * 5).state_dict())


def test_sampling_an_empty_tree_raises():
    with pytest.raises(ValueError, match="all 0"):
        SumTree(4, CPU).sample(2, generator(0))
    tree = tree_with([1.0, 2.0])
    tree.update(torch.tensor([0, 1]), torch.zeros(2))
    with pytest.raises(ValueError, match="all 0"):
        tree.sample(2, generator(0))
    assert tree.min_positive().item() == math.inf


@pytest.mark.parametrize("bad", [-1.0, -1e-300, math.nan, math.inf])
def test_update_rejects_negative_and_non_finite_priorities(bad):
    tree = tree_with([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="finite and non-negative") as error:
        tree.update(torch.tensor([0, 1]), torch.tensor([5.0, bad], dtype=torch.float64))
    assert "\n" not in str(error.value)
    assert tree.get(torch.arange(3)).tolist() == [1.0, 2.0, 3.0] and tree.total().item() == 6.0  # untouched


@pytest.mark.parametrize("slots", [[3], [-1], [0, 7]])
def test_update_rejects_slots_outside_the_tree(slots):
    tree = tree_with([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        tree.update(torch.tensor(slots), torch.ones(len(slots)))
    assert tree.total().item() == 6.0


def test_update_rejects_mismatched_or_float_indices_and_ignores_empty():
    tree = tree_with([1.0, 2.0])
    with pytest.raises(ValueError, match="2 indices but 1 priorities"):
        tree.update(torch.tensor([0, 1]), torch.ones(1))
    with pytest.raises(ValueError, match="integers"):
        tree.update(torch.tensor([0.0]), torch.ones(1))
    tree.update(torch.tensor([], dtype=torch.int64), torch.tensor([]))
    assert tree.total().item() == 3.0
    with pytest.raises(ValueError, match="capacity"):
        SumTree(0, CPU)

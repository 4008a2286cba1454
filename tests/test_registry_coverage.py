"""The tests' hand-written per-algorithm cases (each with the settings worth testing for that algorithm) are checked
against the registry, so a new algorithm cannot be left out of them without a test failing. Everything the
contract covers for every algorithm alike is in tests/test_conformance.py, driven by the registry itself."""

from __future__ import annotations

from rlexp.agents.registry import algorithms
from tests import test_deploy, test_resume, test_seeds
from tests.conftest import CONF


def algo_of(args: list[str]) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith("algo="))


def test_every_algorithm_has_its_yaml_and_its_deployment_case():
    assert sorted(p.stem for p in (CONF / "algo").glob("*.yaml")) == sorted(algorithms())
    # rlexp.load, the three export formats and an episode without rlexp (tests/test_deploy.py)
    assert {algo_of(args) for args in test_deploy.RUNS.values()} == set(algorithms())
    assert set(test_deploy.FORMAT_OF) == set(test_deploy.RUNS)


def test_every_family_and_every_batching_algorithm_resumes_exactly_after_sigkill():
    families = {algorithms()[algo_of(args)].family for args in test_resume.RUNS.values()}
    assert families == {spec.family for spec in algorithms().values()}
    # many seeds as one model: each members class, or the one it extends (A2CMembers is PPOMembers over A2C's
    # loss; DDPG's is TD3's), under SIGKILL
    members = {spec.members for spec in algorithms().values() if spec.members is not None}
    killed = {algorithms()[algo_of(args)].members for args in test_seeds.KILLED.values()}
    assert all(any(isinstance(m, type) and isinstance(k, type) and issubclass(m, k) for k in killed) for m in members)

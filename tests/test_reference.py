"""The docs site's configuration reference is generated from the code (rlexp/commands/reference.py, through the
MkDocs hook docs/_hooks/reference.py): every key, its type, default, range and meaning, so no table can drift."""

from __future__ import annotations

import importlib.util
import re

import pytest

from rlexp.agents.registry import algorithms
from rlexp.config import checks
from rlexp.config.docs import keys
from rlexp.config.schema import TrainConfig
from rlexp.errors import ConfigError
from tests.conftest import ROOT

DOCS = ROOT / "docs"


def rows(table: str) -> dict[str, list[str]]:
    """{key: [type, default, range, meaning]} of a generated table."""
    found = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        found[cells[0].strip("`")] = cells[1:]
    return found


def test_the_checks_record_the_ranges_they_enforce_only_while_recording():
    with checks.recording() as ranges:
        checks.check_range("algo.tau", 0.5, 0.0, 1.0, low_inclusive=False)
        checks.check_positive_int("env.num_envs", 3)
        checks.check_range("algo.lr", 1e-3, 0.0, low_inclusive=False)
    assert ranges == {"algo.tau": "(0, 1]", "env.num_envs": "integer >= 1", "algo.lr": "(0, inf]"}
    checks.check_range("algo.gamma", 0.5, 0.0, 1.0)   # not recording: nothing kept, nothing raised
    assert "algo.gamma" not in ranges


def test_the_reference_of_the_common_keys_has_every_key_its_default_and_its_range():
    from rlexp.commands.reference import common_keys

    table = rows(common_keys())
    assert set(table) == {key for key, _, _ in keys(TrainConfig) if key != "algo"}
    assert table["seed"][1:3] == ["`0`", "[0, 4294957295]"]
    assert table["env.num_envs"][1:3] == ["`1`", "integer >= 1"]
    assert table["env.id"][1] == "per env (conf/env/)" and table["total_steps"][1] == "per env (conf/env/)"
    assert table["log.backends"][1] == "`[tensorboard]`" and table["checkpoint.keep"][1] == "`3`"
    assert table["env.vectorization"][0] == "sync \\| async \\| envpool"   # a cell's pipes escaped
    assert "seed_&lt;s>/" in table["seeds"][3]   # and its < outside code spans, not read as HTML
    assert "Polyak" not in common_keys() and all(meaning for *_, meaning in table.values())


def test_an_algorithms_reference_has_its_yaml_defaults_before_any_preset_and_the_checked_ranges():
    from rlexp.commands.reference import algo_keys

    table = rows(algo_keys("td3"))
    assert table["algo.tau"][1:3] == ["`0.005`", "(0, 1]"]
    assert table["algo.learning_starts"][1] == "`10000`"   # conf/algo/td3.yaml's, not the Pendulum preset's
    assert table["algo.policy_delay"][3].startswith("critic updates per actor and target update")
    assert table["algo.noise.type"][0] == "gaussian \\| ou"   # nested sections expanded
    with pytest.raises(ConfigError, match="no algorithm 'td4'"):
        algo_keys("td4")


def test_every_algorithm_has_a_page_with_its_generated_keys_and_the_hook_fills_the_markers():
    pages = {path.stem: path.read_text() for path in (DOCS / "algorithms").glob("*.md")}
    for name in algorithms():
        assert f"<!-- rlexp:algo-keys {name} -->" in pages[name], name
    assert "<!-- rlexp:config-keys -->" in (DOCS / "configuration.md").read_text()
    spec = importlib.util.spec_from_file_location("reference_hook", DOCS / "_hooks" / "reference.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = hook.on_page_markdown("# A2C\n\n<!-- rlexp:algo-keys a2c -->\n", None, None, None)
    assert "| `algo.rms_prop_eps` |" in page and "<!--" not in page
    with pytest.raises(ConfigError):
        hook.on_page_markdown("<!-- rlexp:algo-keys nope -->", None, None, None)

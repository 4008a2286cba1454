"""The configuration reference of the docs site, generated from the code, so no hand-kept table can drift:

- each key and its type and meaning from its field in the schema (`rlexp.config.docs`: the docstring under it,
  the same text `rlexp train --help` prints);
- its default as Hydra composes conf/ (an algorithm's from conf/algo/<name>.yaml, before any tuned preset; a key
  whose value depends on the env says so);
- its range from the checks `rlexp train` makes (`rlexp.config.checks.recording`, while validating the composed
  default config), so the range stated is the one enforced.

docs/_hooks/reference.py puts these tables where a page says `<!-- rlexp:config-keys -->` or
`<!-- rlexp:algo-keys <name> -->`.
"""

from __future__ import annotations

import functools
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlexp.agents.registry import algorithms
from rlexp.commands.configstore import compose_config
from rlexp.config import checks
from rlexp.config.actions import ActionKind
from rlexp.config.docs import keys
from rlexp.config.schema import TrainConfig
from rlexp.config.validate import validate
from rlexp.errors import ConfigError
from rlexp.sweeps.search import override_value

#: Envs whose configs are composed to tell a key that depends on the env (conf/env/<name>.yaml) from one that
#: does not.
ENVS = ("CartPole-v1", "Pendulum-v1", "atari")


@functools.cache
def _composed(overrides: tuple[str, ...]) -> DictConfig:
    return compose_config(list(overrides))


def _unresolved(overrides: tuple[str, ...]) -> dict[str, Any]:
    """The composed config as plain data, interpolations as written."""
    return OmegaConf.to_container(_composed(overrides), resolve=False, enum_to_str=True)  # type: ignore[return-value]


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict) or not node or prefix in ("env.kwargs.", "network.torso."):
        return {prefix.rstrip("."): node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(_flat(value, f"{prefix}{key}."))
    return flat


def _shown(value: Any) -> str:
    """A default as one types it in an override (null, true, [256,256]), as code."""
    return f"`{override_value(value)}`"


def _cell(text: str) -> str:
    """Text for a Markdown table cell: its pipes escaped, and a `<` outside code spans (seed_<s>) as an entity, so it
    does not open an HTML tag."""
    parts = text.replace("|", "\\|").split("`")
    return "`".join(part if i % 2 else part.replace("<", "&lt;") for i, part in enumerate(parts))


def _recorded_ranges(overrides: tuple[str, ...]) -> dict[str, str]:
    """The ranges the checks admit, recorded while validating the config `overrides` compose."""
    config = OmegaConf.to_container(_composed(overrides), resolve=True, enum_to_str=True)
    with checks.recording() as ranges:
        validate(config, algorithms())  # type: ignore[arg-type]
    return dict(ranges)


def _algo_env(name: str) -> str:
    """An env the algorithm acts in: CartPole-v1 (discrete actions) or Pendulum-v1 (continuous)."""
    return "CartPole-v1" if ActionKind.DISCRETE in algorithms()[name].actions else "Pendulum-v1"


def _table(rows: list[tuple[str, str, str, str, str]]) -> str:
    lines = ["| key | type | default | range | meaning |", "|---|---|---|---|---|"]
    lines += [f"| `{key}` | {_cell(kind)} | {_cell(default)} | {_cell(admits)} | {_cell(doc)} |"
              for key, kind, default, admits, doc in rows]
    return "\n".join(lines)


def common_keys() -> str:
    """The table of every key outside `algo.*`: defaults as `rlexp train` composes them, per env where they
    differ between envs."""
    per_env = [_flat(_unresolved((f"env={env}", *(["algo=td3"] if env == "Pendulum-v1" else []))))
               for env in ENVS]
    ranges = _recorded_ranges(("env=CartPole-v1",))
    rows = []
    for key, kind, doc in keys(TrainConfig):
        if key == "algo":
            continue
        values = [flat[key] for flat in per_env if key in flat]
        if not values:
            default = ""
        elif len(values) < len(ENVS) or any(v != values[0] for v in values):
            default = "per env (conf/env/)"
        else:
            default = _shown(values[0])
        rows.append((key, kind, default, ranges.get(key, ""), doc))
    return _table(rows)


def algo_keys(name: str) -> str:
    """The table of `algo=<name>`'s keys, with its conf/algo/<name>.yaml defaults (before a tuned preset)."""
    if name not in algorithms():
        raise ConfigError(f"no algorithm {name!r}: one of {', '.join(sorted(algorithms()))}")
    env = _algo_env(name)
    overrides = (f"algo={name}", f"env={env}", "~tuned")
    defaults = _flat(_unresolved(overrides)["algo"], "algo.")
    ranges = _recorded_ranges(overrides)
    rows = [(key, kind, _shown(defaults[key]) if key in defaults else "", ranges.get(key, ""), doc)
            for key, kind, doc in keys(TrainConfig, algo=algorithms()[name].schema) if key.startswith("algo.")]
    return _table(rows)

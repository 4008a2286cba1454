"""A validated config (plain data) as its schema's dataclasses: what the layers below the train command are given.

The train command composes and validates the config as plain data (and saves it as such, in .hydra/ and in every
checkpoint); a job then works from these typed objects, whose attribute access a type checker sees
(`config.algo.batch_size`). Choice keys become their `Choice` enums, which equal their strings.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, cast

from omegaconf import OmegaConf

from rlexp.config.schema import TrainConfig

T = TypeVar("T")


def _known(node: dict[str, Any], schema: type) -> dict[str, Any]:
    """The entries of `node` that are fields of `schema`: a saved config filled in by rlexp.config.compat may hold
    keys added for another algorithm's section (validation refuses unknown keys in a new config)."""
    names = {f.name for f in dataclasses.fields(schema)}
    return {key: value for key, value in node.items() if key in names}


def typed(node: dict[str, Any], schema: type[T]) -> T:
    """One section of a validated config (e.g. `config["algo"]`) as an instance of its schema."""
    return cast(T, OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), _known(node, schema))))


def train_config(config: dict[str, Any], algo_schema: type) -> TrainConfig:
    """The whole validated config as a TrainConfig, its `algo` an instance of the algorithm's schema."""
    root = OmegaConf.structured(TrainConfig)
    root.algo = OmegaConf.structured(algo_schema)
    data = {**config, "algo": _known(config["algo"], algo_schema)}
    return cast(TrainConfig, OmegaConf.to_object(OmegaConf.merge(root, data)))

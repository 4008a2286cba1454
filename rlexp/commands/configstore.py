"""The schemas in Hydra's ConfigStore, where conf/ refers to them, and the resolver conf/ uses for sweep job
directories: what `rlexp train` (and a test composing conf/) registers before Hydra composes; where conf/ is."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from rlexp.agents.registry import algorithms, get
from rlexp.config.docs import describe
from rlexp.config.schema import TrainConfig


def config_dir() -> str:
    """conf/ at the top of a source checkout (editable installs); the copy inside the package otherwise."""
    source_tree = Path(__file__).resolve().parents[2] / "conf"
    return str(source_tree if source_tree.is_dir() else Path(__file__).resolve().parents[1] / "conf")


def job_dirname(override_dirname: str, limit: int = 120) -> str:
    """A sweep job's directory name from its overrides: `/` (as in env.id=ALE/Pong-v5) would nest
    directories, and an Optuna trial's overrides easily pass the file system's 255-byte limit, so long
    names are cut and end in a hash of the whole (the full overrides are in the job's .hydra/)."""
    name = override_dirname.replace("/", "_")
    if len(name) <= limit:
        return name
    return f"{name[:limit - 9]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def register() -> None:
    """Store the schemas where conf/ refers to them and the resolver conf/ uses for sweep job directories
    (idempotent: the ConfigStore is a singleton)."""
    OmegaConf.register_new_resolver("rlexp.job_dirname", job_dirname, replace=True)
    # `rlexp train --help`: every key of the chosen algorithm's config, typed and documented from the schema
    OmegaConf.register_new_resolver("rlexp.keys", lambda algo: describe(TrainConfig, get(algo).schema),
                                    replace=True)
    store = ConfigStore.instance()
    store.store(name="rlexp_schema", node=TrainConfig)
    for spec in algorithms().values():
        store.store(name=f"{spec.name}_schema", node=spec.schema)  # no group: kept out of `--help`'s group list


@functools.cache
def _hydra() -> Any:
    """This process's Hydra over conf/, made once: setting one up for each composition cost about 40% of one."""
    register()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):   # (it puts back Hydra's global)
        return GlobalHydra.instance().hydra


def compose_config(overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """conf/ composed with `overrides`, as `rlexp train` composes it (with_hydra: with its `hydra` node), outside a
    run: the docs' configuration reference, the tests. Hydra's global slot holds this process's instance only while
    it composes."""
    instance = _hydra()   # (first: setting it up replaces Hydra's global singleton)
    global_hydra = GlobalHydra.instance()
    before, global_hydra.hydra = global_hydra.hydra, instance
    try:
        return compose(config_name="config", overrides=overrides, return_hydra_config=with_hydra)
    finally:
        global_hydra.hydra = before

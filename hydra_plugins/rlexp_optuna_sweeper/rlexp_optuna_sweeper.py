"""The Hydra side of rlexp's hyperparameter search (rlexp/sweeps/search.py): Hydra finds sweepers in the
`hydra_plugins` namespace only, so this class is here; the search itself is rlexp's.

Selected by the hparams_search presets (`override /hydra/sweeper: rlexp_optuna`); its keys are in
conf/hydra/sweeper/rlexp_optuna.yaml. `_recursive_: false` there: the sampler is built here, with a seed the search
chooses, and the pruner's spec goes to each trial's runs, which build it themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class RlexpOptunaSweeper(Sweeper):
    def __init__(self, study_name: str, storage: str | None, direction: str, n_trials: int, n_jobs: int,
                 seeds: Any, aggregate: str, seeds_as: str, sampler: Any = None, pruner: Any = None,
                 params: Any = None) -> None:
        from rlexp.sweeps.search import SearchSettings

        def plain(value: Any) -> Any:
            return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value

        self.settings = SearchSettings(
            study_name=study_name, storage=storage, direction=direction, n_trials=n_trials, n_jobs=n_jobs,
            seeds=tuple(plain(seeds) or ()), aggregate=aggregate, seeds_as=seeds_as,
            params={str(k): str(v) for k, v in (plain(params) or {}).items()})
        self.sampler_spec: dict[str, Any] | None = plain(sampler)
        self.pruner_spec: dict[str, Any] | None = plain(pruner)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                               task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        from rlexp.sweeps.search import Study, run_search

        assert self.config is not None and self.hydra_context is not None
        config = self.config
        sweep_dir = Path(str(config.hydra.sweep.dir))

        def record() -> None:   # (what continuing the sweep compares: rlexp/commands/arguments.py)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(config, sweep_dir / "multirun.yaml")

        run_search(self.settings, arguments, Study(sweep_dir=sweep_dir, record=record, launch=self._launch,
                                                   seeds_batch=self._seeds_batch, sampler=self._sampler,
                                                   pruner=self.pruner_spec))

    def _launch(self, jobs: list[list[str]], first: int) -> list[dict[str, Any]]:
        assert self.launcher is not None
        returns = self.launcher.launch(jobs, initial_job_idx=first)
        results = []
        for job in returns:
            try:
                value = job.return_value
            except Exception as error:   # (rlexp's task returns its failures; this is a launcher's own)
                value = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
            results.append(value if isinstance(value, dict) else {"status": "failed", "error": repr(value)})
        return results

    def _seeds_batch(self, overrides: list[str]) -> bool:
        """Whether the trial's algorithm trains its seeds as one batched model (seeds=[...])."""
        from rlexp.sweeps.search import seeds_batch

        assert self.config is not None and self.hydra_context is not None
        composed = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        return seeds_batch(OmegaConf.to_container(composed.algo, resolve=True), list(self.settings.seeds))

    def _sampler(self, offset: int) -> Any:
        from hydra.utils import instantiate

        if not self.sampler_spec:
            return None
        spec = dict(self.sampler_spec)
        if spec.get("seed") is not None:   # a continued study: new draws, not the first run's again
            spec["seed"] = int(spec["seed"]) + offset
        return instantiate(spec)

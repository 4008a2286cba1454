"""rlexp's Optuna sweeper for Hydra (`hydra/sweeper=rlexp_optuna`; conf/hydra/sweeper/rlexp_optuna.yaml)."""

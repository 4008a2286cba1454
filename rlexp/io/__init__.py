"""What a run writes: checkpoints, TensorBoard metrics, results.json; the layout of its directory."""

from __future__ import annotations

from pathlib import Path

#: The TensorBoard scalar the HParams tab, the sweepers and `rlexp plot` compare runs by (here, not in
#: rlexp.io.metrics, so that `rlexp plot` can name it without loading torch).
OBJECTIVE = "eval/mean_return"


def seed_dir(run_dir: Path, seed: int) -> Path:
    """Where one seed of a many-seeds run (`seeds=[...]`) keeps its own run."""
    return run_dir / f"seed_{seed}"


def seed_runs(run_dir: Path) -> list[Path]:
    """The seeds' runs of a many-seeds run in `run_dir`, in seed order (none: a single run, or no run)."""
    runs = (d for d in run_dir.glob("seed_*") if (d / ".hydra" / "overrides.yaml").is_file())
    return sorted(runs, key=lambda d: (len(d.name), d.name))


def shown_path(path: str | Path) -> str:
    """A path as the user's command named it: relative to the current directory when inside it (`rlexp train`
    makes a sweep's directory absolute, for launchers whose workers run elsewhere), absolute otherwise."""
    resolved = Path(path)
    return str(resolved.relative_to(Path.cwd())) if resolved.is_relative_to(Path.cwd()) else str(path)


def override_key(override: str) -> str:
    """The key a Hydra override (of a run's .hydra/overrides.yaml) sets: `+algo.lr=1` -> `algo.lr`; `algo=td3` ->
    `algo`; `~seed` -> `seed`."""
    return override.lstrip("~+").split("=", 1)[0]

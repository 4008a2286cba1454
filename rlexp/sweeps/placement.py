"""Where a sweep's job runs on its machine: how many CPU threads it may use and which GPU it takes.

Jobs started side by side must not oversubscribe the cores: N jobs that each let torch use every core
spend their time switching threads (benchmarks/sweep.py measures it). So a job that is not told a thread
count takes its share from the launcher that started it. On a machine with several GPUs the jobs of a
sweep either spread over them (job i on GPU i mod N) or pack onto one.
"""

from __future__ import annotations

import os
from typing import Any

from rlexp.config.schema import GpuPlacement


def available_cpus() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallel_jobs(n_jobs: int, cpu_count: int) -> int:
    """How many workers joblib runs for `n_jobs` (-1 = one per core, -2 = all but one, ...)."""
    return n_jobs if n_jobs > 0 else max(cpu_count + 1 + n_jobs, 1)


def launcher_threads(launcher: dict[str, Any], cpu_count: int) -> int | None:
    """The torch threads a job of this Hydra launcher should use; None where the job runs alone.

    joblib: the cores divided among its workers. Ray: the CPUs the task reserves (1 unless
    `hydra.launcher.ray.remote.num_cpus` says otherwise), since Ray packs one such task per CPU.
    submitit (SLURM or local): `cpus_per_task`, which is also what SLURM grants (1 when unset).
    """
    target = str(launcher.get("_target_", ""))
    if target.endswith("JoblibLauncher"):
        return max(cpu_count // parallel_jobs(int(launcher.get("n_jobs") or -1), cpu_count), 1)
    if target.endswith("RayLauncher"):
        remote = (launcher.get("ray") or {}).get("remote") or {}
        return max(int(remote.get("num_cpus") or 1), 1)
    if ".submitit_launcher." in target:
        return max(int(launcher.get("cpus_per_task") or 1), 1)
    return None


def torch_threads(requested: int, launcher: dict[str, Any], cpu_count: int) -> int | None:
    """`torch_threads` as configured (>0), else the launcher's share; None leaves torch's default."""
    return requested if requested > 0 else launcher_threads(launcher, cpu_count)


def job_device(device: str, placement: GpuPlacement, job_num: int | None, gpu_count: int) -> str:
    """The device of job `job_num` of a sweep (None: a single run) on a machine with `gpu_count` GPUs.

    Only `auto` and a bare `cuda` are placed; `cpu` and an explicit `cuda:N` are kept as given.
    """
    if device not in ("auto", "cuda") or gpu_count == 0:
        return device
    if job_num is None or gpu_count == 1 or placement is GpuPlacement.pack:
        return "cuda:0"
    return f"cuda:{job_num % gpu_count}"

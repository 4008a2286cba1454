"""`compile=`: an agent's gradient computations compiled with torch.compile, and on a GPU captured as CUDA graphs.

Each agent names the methods to compile (`compiled`): the forward passes, losses and backward of one update, as
functions of tensors that change nothing but the gradients they leave (and the generators they draw noise from).
So a compiled method is a drop-in for the eager one: the checkpoint is the same (the modules are not wrapped),
and a compiled run's checkpoint resumes eager and back. The optimizer steps stay eager: Adam is fused already
(one kernel for every tensor). Python-side decisions (the target network's period, TD3's policy delay, PPO's
target_kl stop) stay outside the compiled functions, and what changes between calls enters them as tensors (PPO's
clip range), so a run compiles each function once rather than once per value.

On CUDA the default mode is "reduce-overhead": torch.compile's CUDA graphs, which replay an update's kernels
with one launch (LeanRL's recipe; most of a small network's update is launch overhead). Its outputs live in
memory the next replay overwrites, so they are cloned before they are returned.

If compiling fails (no C++ compiler for the CPU backend, an operation the backend lacks), the run goes on eager
from that call, with one warning naming the cause: the failed call's gradients are cleared and its generators
rewound before the eager call, so the run is the eager run from there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

log = logging.getLogger("rlexp")

def compile_enabled(setting: bool | str, device: torch.device) -> bool:
    """`compile=true|false|auto`: auto compiles on CUDA only (on the CPU eager measured faster for these small
    networks: the README's "Compiled updates"; `python benchmarks/gpu.py --device cpu` measures both)."""
    return device.type == "cuda" if setting == "auto" else bool(setting)


def compile_mode(mode: str | None, device: torch.device) -> str:
    return mode if mode is not None else ("reduce-overhead" if device.type == "cuda" else "default")


class CompiledMethod:
    """`method` compiled on its first call, or eager again for good once compiling it has failed."""

    def __init__(self, method: Callable[..., Any], what: str, mode: str, parameters: list[torch.Tensor],
                 generators: list[torch.Generator]) -> None:
        self.eager, self.what, self.mode = method, what, mode
        self.compiled: Callable[..., Any] | None = torch.compile(method, mode=mode, dynamic=False)
        self.parameters, self.generators = parameters, generators
        self.cuda_graphs = mode in ("reduce-overhead", "max-autotune") and any(p.is_cuda for p in parameters)

    def __call__(self, *args: Any) -> Any:
        if self.compiled is None:
            return self.eager(*args)
        states = [generator.get_state() for generator in self.generators]
        try:
            if self.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
                return _cloned(self.compiled(*args))
            return self.compiled(*args)
        except Exception as error:   # noqa: BLE001 - any failure to compile: the run goes on eager
            cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            log.warning("compile: %s could not be compiled (%s: %s); it runs eager", self.what,
                        type(error).__name__, cause[:200])
            self.compiled = None
            for parameter in self.parameters:
                parameter.grad = None
            for generator, state in zip(self.generators, states):
                generator.set_state(state)
            return self.eager(*args)


def _cloned(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, tuple):
        return tuple(_cloned(item) for item in value)
    return value


def compile_agent(agent: Any, setting: bool | str, mode: str | None, device: torch.device) -> Any:
    """Wrap the methods `agent.compiled` names when `setting` (compile=) enables compiling on `device`."""
    if not compile_enabled(setting, device):
        return agent
    mode = compile_mode(mode, device)
    parameters: list[torch.Tensor] = [p for value in vars(agent).values() if isinstance(value, nn.Module)
                                      for p in value.parameters()]
    parameters += [value for value in vars(agent).values() if isinstance(value, torch.Tensor) and value.requires_grad]
    generators = [g for value in vars(agent).values()
                  for g in (value if isinstance(value, list) else [value]) if isinstance(g, torch.Generator)]
    for name in getattr(agent, "compiled", ()):
        what = f"{type(agent).__name__}.{name}"
        setattr(agent, name, CompiledMethod(getattr(agent, name), what, mode, parameters, generators))
    return agent

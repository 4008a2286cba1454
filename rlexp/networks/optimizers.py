"""torch's Adam and RMSprop, without importing torch._dynamo when a run that does not compile first uses them.

torch.optim.Optimizer's `add_param_group` (called by every optimizer's `__init__`), `zero_grad`, `state_dict` and
`load_state_dict` are decorated with `torch._disable_dynamo`, and each optimizer's `step` with
`_use_grad_for_differentiable`: decorators for torch.compile's sake, each of which imports torch._dynamo (and
sympy with it) on its first call. That import is about 0.9 s of every training run's start on these machines
(`python -X importtime -m rlexp train ...`), for a module a run that does not compile never uses. rlexp steps
its optimizers eagerly whether or not it compiles (rlexp/agents/compiled.py), so these classes call the methods
the decorators wrap: the same arithmetic bit for bit, the same state dicts, the same checkpoints.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch


class Eager:
    """The undecorated Optimizer methods; first among an optimizer's bases, so that they are the ones called."""

    add_param_group = inspect.unwrap(torch.optim.Optimizer.add_param_group)
    zero_grad = inspect.unwrap(torch.optim.Optimizer.zero_grad)
    state_dict = inspect.unwrap(torch.optim.Optimizer.state_dict)
    load_state_dict = inspect.unwrap(torch.optim.Optimizer.load_state_dict)


def eager_step(optimizer_class: type[torch.optim.Optimizer]) -> Callable[..., Any]:
    """`optimizer_class.step` as `_use_grad_for_differentiable` runs it for a non-differentiable optimizer (no
    gradient recorded), without its torch._dynamo graph breaks, which only matter while compiling a step."""
    step = inspect.unwrap(optimizer_class.step)

    def eager(self: torch.optim.Optimizer, closure: Callable[[], Any] | None = None) -> Any:
        assert not self.defaults.get("differentiable"), "rlexp's optimizers are not differentiable"
        with torch.no_grad():
            return step(self, closure)

    return eager


class Adam(Eager, torch.optim.Adam):
    step = eager_step(torch.optim.Adam)


class RMSprop(Eager, torch.optim.RMSprop):
    step = eager_step(torch.optim.RMSprop)

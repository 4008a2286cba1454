"""Many seeds' networks as one module: a member axis in front of every parameter.

N independent copies of a network (one per seed, each initialised by its own seed) become one module whose
linear layers are `MemberLinear`s: weights (N, out, in), evaluated on inputs (N, batch, in) as one batched matrix
product. For the small networks of RL this is what a CPU (or a GPU's kernel launches) spends its time on, and
MemberLinear layers measured faster than the members' updates one after another and than torch.func's vmap over
functional_call (the README's Design section, "Runners ask, drivers answer"; `python benchmarks/seeds.py` measures
a many-seeds run against its seeds run one after another). So the layers are batched natively, as TD3's twin
critics already are, rather than through vmap.

The member modules stay usable as they were: `stack_members` rebinds each member's parameters to its slice of the
stacked ones (views: no copy), so a member evaluates, exports and loads its checkpoint as a single run's agent
does, and what it loads lands in the stacked module. Every member is its own function of its own parameters:
sum the members' losses and each member's gradient is its own loss's gradient.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar, cast

import torch
from torch import Tensor, nn

from rlexp.errors import ConfigError
from rlexp.networks.optimizers import Eager


class MemberLinear(nn.Module):
    """N independent linear layers, y_k = x_k W_k^T + b_k, as one batched matrix product.

    The weights keep nn.Linear's (out, in) layout per member, so a member's slice is its nn.Linear weight."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]),
                                   requires_grad=layers[0].weight.requires_grad)
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]),
                                 requires_grad=layers[0].bias.requires_grad)

    def forward(self, x: Tensor) -> Tensor:
        # x: (N, batch, in) -> (N, batch, out)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


#: Modules without parameters of their own that work on any leading axes.
_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Identity, nn.Sequential, nn.ModuleList)


M = TypeVar("M", bound=nn.Module)


def stack_members(modules: Sequence[M], what: str) -> M:
    """One module computing all `modules` at once on inputs with a leading member axis; each member's parameters
    become views of its slice. The modules must have the same structure, built of linear layers, modules that
    stack themselves (a classmethod `stack_members(modules)`, e.g. the critic ensemble), and modules whose forward
    works on any leading axes (their reductions over dim=-1) with no parameters of their own and the same buffers
    in every member (the action bounds); anything else is refused in one line, naming `what`."""
    template = modules[0]
    cls: type = type(template)   # a plain type, which the checker's hasattr narrowing understands
    if hasattr(cls, "stack_members"):
        stacked: M = cls.stack_members(list(modules))
        share_storage(stacked, modules)
        return stacked
    stacked = copy.deepcopy(template)
    replaced: list[str] = []   # whole layers swapped in (named_modules lists a layer before its submodules)
    for name, module in template.named_modules():
        if any(name.startswith(done + ".") for done in replaced):
            continue
        members = [m.get_submodule(name) if name else m for m in modules]
        if isinstance(module, nn.Linear):
            _replace(stacked, name, MemberLinear(cast("list[nn.Linear]", members)))   # the same layer in each
            replaced.append(name)
        elif hasattr(type(module), "stack_members"):
            _replace(stacked, name, type(module).stack_members(members))
            replaced.append(name)
        elif isinstance(module, _ELEMENTWISE):
            continue
        elif any(True for _ in module.parameters(recurse=False)) or not all(
                torch.equal(b, other) for member in members[1:]
                for b, other in zip(module.buffers(recurse=False), member.buffers(recurse=False))):
            raise ConfigError(f"{what} has a {type(module).__name__} layer, which cannot be batched over seeds yet; "
                              f"train its seeds one run each")
    share_storage(stacked, modules)
    return stacked


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, new)


def member_view(whole: Tensor, members: int, k: int, shape: Sequence[int]) -> Tensor:
    """Member k's slice of a stacked tensor, in the member's own shape. Stacked tensors are member-major: member k's
    values are the k-th of `members` equal blocks (a MemberLinear's (N, out, in) weight; a stacked critic
    ensemble's (N * critics, in, out))."""
    return whole.view(members, *shape)[k]


@torch.no_grad()
def share_storage(stacked: nn.Module, modules: Sequence[nn.Module]) -> None:
    """Member k's parameters become its slice of the stacked ones: what the stacked module learns, each member
    module has."""
    stacked_params = list(stacked.parameters())
    for k, module in enumerate(modules):
        params = list(module.parameters())
        if len(params) != len(stacked_params):
            raise ValueError("the members do not have the stacked module's structure")
        for param, whole in zip(params, stacked_params):
            param.data = member_view(whole.data, len(modules), k, param.shape)


@torch.no_grad()
def clip_grad_norm_per_member(params: Sequence[Tensor], max_norm: float, members: int) -> Tensor:
    """clip_grad_norm_ for each member on its own (never one norm across seeds): member k's gradients are scaled by
    min(1, max_norm / (||g_k|| + 1e-6)), ||g_k|| the L2 norm of all of member k's gradients. Returns the norms
    before clipping, shape (members,)."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = grad_norm_per_member(params, members)
    coefficients = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    rows = member_rows(grads, members)
    torch._foreach_mul_(rows, [coefficients.view(members, 1)] * len(rows))
    return norms


@torch.no_grad()
def grad_norm_per_member(params: Sequence[Tensor], members: int) -> Tensor:
    """||g_k|| for every member, shape (members,): what `grad_norm` reports for one run."""
    grads = [p.grad for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.cat(member_rows(grads, members), dim=1), dim=1)


def member_rows(tensors: Iterable[Tensor], members: int) -> list[Tensor]:
    """Each stacked tensor as a (members, -1) view: member-major, so member k's values are row k."""
    return [t.view(members, -1) for t in tensors]


def standard_normal(shape: Sequence[int], generator: torch.Generator | Sequence[torch.Generator],
                    device: torch.device) -> Tensor:
    """N(0, I) noise of `shape` from one generator, or, given one generator per member, each member's slice
    (shape[0] is the member axis) from its own: the draws a single run of that member makes."""
    if isinstance(generator, torch.Generator):
        return torch.randn(tuple(shape), generator=generator, device=device)
    return torch.stack([torch.randn(tuple(shape[1:]), generator=g, device=device) for g in generator])


def uniform(shape: Sequence[int], generator: torch.Generator | Sequence[torch.Generator],
            device: torch.device) -> Tensor:
    """U[0, 1) numbers of `shape`, from one generator or one per member, as `standard_normal`."""
    if isinstance(generator, torch.Generator):
        return torch.rand(tuple(shape), generator=generator, device=device)
    return torch.stack([torch.rand(tuple(shape[1:]), generator=g, device=device) for g in generator])


def stack_optimizer_state(optimizer: torch.optim.Optimizer, stacked_params: Sequence[Tensor],
                          members: Sequence[torch.optim.Optimizer]) -> None:
    """Give `optimizer` (over the stacked parameters) the members' state, each member's in its slice (a resumed
    run's Adam moments). Members without state (a new run) leave it empty."""
    member_params = [list(group_params(m)) for m in members]
    if not members[0].state:
        return
    own_steps = getattr(optimizer, "per_member_steps", False)
    for i, param in enumerate(stacked_params):
        states = [m.state[params[i]] for m, params in zip(members, member_params)]
        optimizer.state[param] = {
            key: (torch.stack([s[key] for s in states]).view(param.shape) if key != "step" else
                  torch.stack([s[key] for s in states]).float() if own_steps else states[0][key].clone())
            for key in states[0]}


def bind_optimizer_state(optimizer: torch.optim.Optimizer, stacked_params: Sequence[Tensor],
                         member: torch.optim.Optimizer, k: int) -> bool:
    """Member k's optimizer state becomes its slice of `optimizer`'s (views, as its parameters are), so its
    checkpoint holds what the stacked optimizer learned. False while the stacked optimizer has no state yet (it
    makes its state at its first step)."""
    if not all(p in optimizer.state for p in stacked_params):
        return False
    own_steps = getattr(optimizer, "per_member_steps", False)
    for param, whole in zip(group_params(member), stacked_params):
        count = whole.numel() // param.numel()
        member.state[param] = {key: (member_view(value, count, k, param.shape) if key != "step" else
                                     member_view(value, count, k, ()) if own_steps else value)
                               for key, value in optimizer.state[whole].items()}
    return True


def group_params(optimizer: torch.optim.Optimizer) -> Iterable[Tensor]:
    return (p for group in optimizer.param_groups for p in group["params"])


class MemberOptimizers:
    """A members agent's optimizers over stacked parameters, given the members' state when it is made (a resumed
    run's moments), and each member's optimizer kept a view of its slice: `pairs` are (the stacked optimizer, its
    parameters, the name of the members' optimizer it stands for)."""

    def __init__(self, pairs: Sequence[tuple[torch.optim.Optimizer, Sequence[Tensor], str]],
                 members: Sequence[Any]) -> None:
        self.pairs, self.members = pairs, list(members)
        for optimizer, params, name in pairs:
            stack_optimizer_state(optimizer, params, [getattr(m, name) for m in self.members])
        self.bound = self._bind()

    def stepped(self, n_updates: int) -> None:
        """After an update: the members' update counters, and their views of state the first step created."""
        for member in self.members:
            member.n_updates = n_updates
        if not self.bound:
            self.bound = self._bind()

    def _bind(self) -> bool:
        return all([bind_optimizer_state(optimizer, params, getattr(m, name), k)
                    for optimizer, params, name in self.pairs for k, m in enumerate(self.members)])


class MemberAdam(Eager, torch.optim.Optimizer):
    """Adam (torch.optim.Adam's update, without weight decay) over stacked parameters whose members may sit out a
    step: each member counts its own steps, and a member left out of `step(active)` keeps its parameters and
    moments as its single run would, had it not stepped (PPO's target_kl stop, which each seed meets at its own
    minibatch). Its moments have the parameters' shapes and its step counts are (members,), so each member's
    torch Adam state is a view of its slice (`bind_optimizer_state`)."""

    per_member_steps = True

    def __init__(self, params: Iterable[Tensor], members: int, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        super().__init__(list(params), dict(lr=lr, betas=betas, eps=eps))
        self.members = members

    @torch.no_grad()
    def step(self, active: Tensor | None = None) -> None:   # type: ignore[override]
        """One Adam step of the members in the bool mask `active` (shape (members,); None: all of them): the
        update of every member at once (foreach ops over (members, -1) rows), then the rows of those left out put
        back as they were."""
        n = self.members
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros(n, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
            on = torch.ones(n, dtype=torch.bool, device=params[0].device) if active is None \
                else active.reshape(n).to(params[0].device)
            rows, grads = member_rows(params, n), member_rows((p.grad for p in params), n)
            exp_avgs = member_rows((self.state[p]["exp_avg"] for p in params), n)
            exp_avg_sqs = member_rows((self.state[p]["exp_avg_sq"] for p in params), n)
            left_out = None if active is None or bool(on.all()) else ~on
            kept = [t[left_out].clone() for t in (*rows, *exp_avgs, *exp_avg_sqs)] if left_out is not None else []
            steps = [self.state[p]["step"] for p in params]   # equal: every tensor steps with the same mask
            torch._foreach_add_(steps, [on.to(steps[0].dtype)] * len(steps))
            step = steps[0].clamp(min=1).view(n, 1)
            beta1, beta2 = group["betas"]
            bias_correction1, bias_correction2 = 1 - beta1 ** step, 1 - beta2 ** step
            torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
            denom = torch._foreach_sqrt(exp_avg_sqs)
            torch._foreach_div_(denom, [bias_correction2.sqrt()] * len(denom))
            torch._foreach_add_(denom, group["eps"])
            updates = torch._foreach_div(exp_avgs, denom)
            torch._foreach_mul_(updates, [group["lr"] / bias_correction1] * len(updates))
            torch._foreach_sub_(rows, updates)
            if kept:   # the members that sat this step out: as they were
                for t, old in zip((*rows, *exp_avgs, *exp_avg_sqs), kept):
                    t[left_out] = old

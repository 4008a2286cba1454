"""The user's own torso (`network.torso: {_target_: my_package.nets.MyTorso, <kwargs>}`): resolved, checked and
built in the observation encoder's position of every algorithm's networks (rlexp/agents/base.py's
observation_encoder), so the heads (Q, actor, critic, value) read its features as they read an encoder's.

The contract: `MyTorso(observation_space, **kwargs)` is a torch.nn.Module with an int `out_features`; its forward
takes observations as replay and rollouts keep them (uint8 images stay uint8, Discrete ones are int64, Box vectors
float32), of shape (batch, *obs_shape), and returns float32 features of shape (batch, out_features). On Dict and
Tuple observations it is built with the env's Dict or Tuple space and called with a dict (nested as the space is) or
tuple of tensors, each entry (batch, *shape) in the dtype replay keeps it in (uint8 images, float32 Boxes, int64
Discrete and MultiDiscrete, int8 MultiBinary), as SB3 hands a features extractor a dict. rlexp's own encoders take
any leading axes; a user's module takes one batch axis, and `UserTorso` folds the others (many seeds'
(seeds, batch)) into it around the module. A target a run's *saved* config names is imported only under the rule of
rlexp/config/trust.py, as its env.id's module and its wrappers are.

Many seeds as one model (`seeds=[...]`): the seeds' torsos, whatever their layers, become one module of stacked
parameters evaluated with torch.func (stack_module_state, functional_call, vmap): `UserTorso.stack_members`.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from rlexp.config.checks import check_torso
from rlexp.config.targets import TARGET, check_arguments, check_target, resolve
from rlexp.errors import ConfigError, one_line
from rlexp.networks.encoders import EntryViews, ObservationEncoder

#: Observations a new torso is tried on before anything trains (and its seeds' stack, under vmap)
EXAMPLES = 2


@dataclass(frozen=True)
class Torso:
    """A resolved network.torso: the module class its `_target_` names and the keyword arguments it is built with."""

    target: str
    module: type[nn.Module]
    kwargs: Mapping[str, Any]

    @property
    def where(self) -> str:
        return f"network.torso ({self.target})"

    def build(self, space: gym.Space) -> UserTorso:
        """`module(space, **kwargs)`, in the encoder's position; one ConfigError line if it cannot be built or has
        no int `out_features`. Packed Dict/Tuple observations (rlexp/envs/packing.py's PackedBox): built with the
        raw space, and given the entries in its structure."""
        raw: gym.Space | None = getattr(space, "raw", None)
        built_for = space if raw is None else raw
        try:
            try:
                inner = self.module(built_for, **self.kwargs)
            except Exception:
                if torch.get_default_device().type != "meta":
                    raise
                # counted on the meta device (AlgoSpec.parameters), a constructor that measures its width with a
                # forward pass may need real numbers (.item(), numpy): built on the CPU, the count is the same
                with torch.device("cpu"):
                    inner = self.module(built_for, **self.kwargs)
        except Exception as error:   # the user's constructor
            raise ConfigError(f"{self.where} could not be built for the observation space {built_for}: it raised "
                              f"{type(error).__name__}: {one_line(str(error))}") from None
        width = getattr(inner, "out_features", None)
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
            raise ConfigError(f"{self.where} has out_features={width!r}: a torso sets out_features, the positive int "
                              f"width of its features (what the heads read), in its __init__")
        views = None if raw is None else EntryViews(cast(Any, space).layout.entries)
        return UserTorso(inner, tuple(space.shape or ()), int(width), self.where, example(space), views, raw)


def resolve_torso(spec: Mapping[str, Any] | None, saved_in: Path | None = None) -> Torso | None:
    """The torso network.torso names (None: `_target_` null, the observation space decides). Its module is imported
    under rlexp/config/trust.py's rule when `saved_in` (the run whose saved config names it) is given; a target
    that does not import, is not an nn.Module subclass, or does not take the observation space and the keyword
    arguments given is one ConfigError line."""
    check_torso(spec)
    if spec is None or spec.get(TARGET) is None:
        return None
    where = f"network.torso ({spec[TARGET]})"
    target = check_target(spec, where, saved_in)
    module = resolve(target, where)
    if not (inspect.isclass(module) and issubclass(module, nn.Module)):
        kind = "a class" if inspect.isclass(module) else f"a {type(module).__name__}"
        raise ConfigError(f"{where} is {kind}, not a torch.nn.Module subclass: name a module class built as "
                          f"MyTorso(observation_space, **kwargs)")
    kwargs = {key: value for key, value in spec.items() if key != TARGET}
    check_arguments(module, where, kwargs, (None,), "the observation space", verb="built")
    return Torso(str(spec[TARGET]), module, kwargs)


def check_user_torso(spec: Mapping[str, Any] | None, space: gym.Space, saved_in: Path | None = None) -> None:
    """Before anything trains: the torso builds for `space`, and maps a batch of the space's observations to
    float32 features of shape (batch, out_features). Each failure is one ConfigError line naming the target."""
    torso = resolve_torso(spec, saved_in)
    if torso is None:
        return
    built = torso.build(space)
    batch = built.example
    try:
        with torch.no_grad():
            features = built.module(built.inputs(batch))
    except Exception as error:   # the user's forward, on what rlexp will give it
        given = f"of shape {tuple(batch.shape)} and dtype {batch.dtype}" if built.views is None else \
            f"({built.description()})"
        raise ConfigError(f"{torso.where} cannot read a batch of observations {given}: it raised "
                          f"{type(error).__name__}: {one_line(str(error))}") from None
    expected = (EXAMPLES, built.out_features)
    if not isinstance(features, Tensor) or tuple(features.shape) != expected:
        what = f"shape {tuple(features.shape)}" if isinstance(features, Tensor) else f"a {type(features).__name__}"
        raise ConfigError(f"{torso.where} gives {what} for a batch of {EXAMPLES} observations, not "
                          f"(batch, out_features) = {expected}: its forward maps (batch, *obs_shape) to (batch, "
                          f"out_features)")
    if features.dtype != torch.float32:
        raise ConfigError(f"{torso.where} gives {features.dtype} features; the heads read float32 (return "
                          f"features.float())")


def example(space: gym.Space) -> Tensor:
    """A batch of observations of `space`, as rlexp hands them to a torso (floats as float32, integers and
    booleans as they are): from a copy of the space, seeded, so the env's own space draws nothing."""
    sampler = copy.deepcopy(space)
    sampler.seed(0)
    batch = np.stack([np.asarray(sampler.sample()) for _ in range(EXAMPLES)])
    return torch.as_tensor(batch, dtype=torch.float32 if batch.dtype.kind == "f" else None)


def structured(space: gym.Space, entries: Iterator[Tensor]) -> Any:
    """The entries (in the packing's order: depth first, a Dict's keys as gymnasium orders them) in the structure of
    the raw `space`: a dict for a Dict, a tuple for a Tuple, nested as it is."""
    if isinstance(space, gym.spaces.Dict):
        return {key: structured(sub, entries) for key, sub in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(structured(sub, entries) for sub in space.spaces)
    return next(entries)


class UserTorso(ObservationEncoder):
    """The user's module in the encoder's position: observations (..., *obs_shape) -> features (..., out_features),
    any leading axes folded into the module's one batch axis. On packed Dict/Tuple observations (`views`, `raw`:
    their entries and the env's space), the module is called with the entries in the raw space's structure."""

    def __init__(self, module: nn.Module, obs_shape: Sequence[int], out_features: int, where: str,
                 example: Tensor, views: EntryViews | None = None, raw: gym.Space | None = None) -> None:
        super().__init__(obs_shape)
        self.module = module
        self.out_features = out_features
        self.where = where
        self.example = example   # (not a buffer: no state, what stacking the seeds tries the stack on)
        self.views, self.raw = views, raw
        # an export's inputs, one per entry (rlexp/deploy/policy.py's EntriesInput)
        self.paths = [] if views is None else views.paths
        self.shapes = [] if views is None else views.shapes

    def inputs(self, observations: Tensor) -> Any:
        """What the module is called with: the observations, or their entries in the raw space's structure."""
        if self.views is None or self.raw is None:
            return observations
        return structured(self.raw, iter(self.views.entries(observations)))

    def encode(self, entries: Sequence[Tensor]) -> Tensor:
        """The features of Dict/Tuple observations given entry by entry, each (batch, *shape) (an export's)."""
        assert self.raw is not None, "a torso of Dict/Tuple observations"
        return self.module(structured(self.raw, iter(entries)))

    def description(self) -> str:
        """The entries the module is given, for messages: `goal: (2, 2) float32, ...`."""
        assert self.views is not None
        return ", ".join(f"{path}: {(EXAMPLES, *shape)} {str(dtype).removeprefix('torch.')}"
                         for path, shape, dtype in zip(self.views.paths, self.views.shapes, self.views.dtypes))

    def forward(self, observations: Tensor) -> Tensor:
        lead = observations.dim() - self.rank
        if lead == 1:   # (batch, *obs_shape): a single run's batch, an export's
            return self.module(self.inputs(observations))
        leading = observations.shape[:lead]
        features = self.module(self.inputs(observations.reshape(-1, *observations.shape[lead:])))
        return features.reshape(*leading, self.out_features)

    @classmethod
    def stack_members(cls, members: Sequence[UserTorso]) -> StackedTorso:
        """Many seeds' torsos as one (rlexp/networks/members.py's stack_members), by torch.func."""
        return StackedTorso(members)


class StackedTorso(nn.Module):
    """Many seeds' copies of a user's torso as one module: their parameters stacked member-major (torch.func's
    stack_module_state: member k's are slice k, so each member's own module keeps a view of them), evaluated by
    vmap over functional_call of one copy of the module. It takes (seeds, ..., *obs_shape) observations and gives
    (seeds, ..., out_features). Persistent buffers (running statistics, as BatchNorm's) would have to be stacked and
    written back per seed: such a torso is refused in one line; other buffers must be the same in every seed."""

    def __init__(self, members: Sequence[UserTorso]) -> None:
        super().__init__()
        first = members[0]
        self.rank, self.out_features, self.where = first.rank, first.out_features, first.where
        self.inputs = first.inputs   # (the raw space's structure of entries, when it reads Dict/Tuple ones)
        self.seeds = len(members)
        persistent = [name for name in first.module.state_dict() if name not in dict(first.module.named_parameters())]
        if persistent:
            raise ConfigError(f"{first.where} has state besides its parameters ({', '.join(persistent[:3])}), which "
                              f"many seeds as one model cannot keep per seed; train its seeds one run each "
                              f"(--multirun seed=...)")
        for name, buffer in first.module.named_buffers():
            if not all(torch.equal(buffer, m.module.get_buffer(name)) for m in members[1:]):
                raise ConfigError(f"{first.where}'s buffer {name} differs between the seeds, which many seeds as one "
                                  f"model cannot batch; train its seeds one run each (--multirun seed=...)")
        params, _ = torch.func.stack_module_state([m.module for m in members])
        self.names = list(params)
        self.stacked = nn.ParameterList(nn.Parameter(params[name].detach(), requires_grad=params[name].requires_grad)
                                        for name in self.names)
        # the module the stacked parameters are called through: outside this module's tree (its own parameters are
        # not this module's), its buffers the seeds' common ones
        self._template = [copy.deepcopy(first.module)]
        device = self.stacked[0].device if len(self.stacked) else first.example.device
        trial = first.example.to(device).unsqueeze(0).expand(self.seeds, *first.example.shape)
        try:
            with torch.no_grad():
                self(trial)
        except Exception as error:   # what vmap cannot batch (data-dependent control flow, .item(), in-place ops)
            raise ConfigError(f"{first.where} cannot be batched over seeds by torch.func.vmap ({type(error).__name__}: "
                              f"{one_line(str(error))[:200]}); train its seeds one run each (--multirun seed=...)"
                              ) from None

    def forward(self, observations: Tensor) -> Tensor:
        template = self._template[0]
        lead = observations.dim() - self.rank   # (seeds, ...batch axes)
        leading = observations.shape[:lead]
        flat = observations.reshape(self.seeds, -1, *observations.shape[lead:])

        def one(params: dict[str, Tensor], x: Any) -> Tensor:
            return torch.func.functional_call(template, params, (x,))

        # (Dict/Tuple entries taken apart before vmap, which maps over the structure's tensors)
        features = torch.vmap(one, randomness="different")(dict(zip(self.names, self.stacked)), self.inputs(flat))
        return features.reshape(*leading, self.out_features)

"""Dict and Tuple observations packed into one flat uint8 array of bytes per observation.

A Dict or Tuple observation is carried through rlexp as one array: each leaf entry's raw bytes in its own dtype
(uint8 images stay uint8, Discrete and MultiDiscrete int64, other Boxes float32, MultiBinary int8: what
SpaceInfo.obs_dtype gives each of these spaces alone), each entry at an offset aligned to its itemsize, the row
padded to 8 bytes. So vector envs (sync and async: the envs' workers pack), the env checks, replay, rollouts, the
many-seeds batching, checkpoints and resume keep handling one array per observation as they do for a Box, and an
observation takes the sum of its entries' bytes. The networks read each entry back as a zero-copy view of those
bytes (rlexp/networks/encoders.py's MultiInputEncoder: torch's Tensor.view(dtype) needs the alignment).

Nested Dicts and Tuples are flattened, their entries named by dotted paths ("goal.position", "0"); a leaf that is
not a Box, Discrete, MultiDiscrete or MultiBinary (Sequence, Graph, Text) is refused in one line naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rlexp.errors import ConfigError

#: Every packed row is a multiple of this many bytes, so that each row starts aligned for every entry's dtype.
ROW_ALIGN = 8
LEAVES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


@dataclass(frozen=True)
class Entry:
    """One leaf of a Dict/Tuple observation, and where its bytes lie in the packed row."""

    path: str                       # "key", "key.sub" (nested Dicts), "0" (Tuples): how messages name it
    keys: tuple[str | int, ...]     # how to reach it in the raw observation
    space: gym.Space                # its space (a Box, Discrete, MultiDiscrete or MultiBinary)
    dtype: np.dtype                 # how it is stored
    shape: tuple[int, ...]          # its shape (a Discrete's is ())
    offset: int                     # its first byte in the packed row (a multiple of dtype.itemsize)
    channels_last: bool | None = None   # an image entry read by the CNN: its channel order (set by
    #                                     rlexp/envs/spaces.py's describe_spaces); None: not read as an image

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def image(self) -> bool:
        return self.channels_last is not None


@dataclass(frozen=True)
class Layout:
    """The entries of a Dict/Tuple space in the order gymnasium gives them (a Dict's keys sorted), and the bytes
    of a packed row."""

    entries: tuple[Entry, ...]
    nbytes: int


def stored_dtype(space: gym.Space) -> np.dtype:
    """The dtype an entry is stored in: uint8 Boxes (images) as they are, other Boxes as float32, Discrete and
    MultiDiscrete as int64, MultiBinary as int8."""
    if isinstance(space, gym.spaces.Box):
        return np.dtype(np.uint8) if space.dtype == np.uint8 else np.dtype(np.float32)
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        return np.dtype(np.int64)
    return np.dtype(np.int8)


def leaves(space: gym.Space, keys: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], gym.Space]]:
    """Every leaf of a Dict/Tuple space with the keys that reach it, nested ones flattened."""
    if isinstance(space, gym.spaces.Dict):
        return [leaf for key, sub in space.spaces.items() for leaf in leaves(sub, (*keys, str(key)))]
    if isinstance(space, gym.spaces.Tuple):
        return [leaf for i, sub in enumerate(space.spaces) for leaf in leaves(sub, (*keys, i))]
    return [(keys, space)]


def check_leaves(space: gym.Space, found: list[tuple[tuple[str | int, ...], gym.Space]]) -> None:
    """Refuse, in one line naming it, a leaf rlexp does not read (Sequence, Graph, Text: MiniGrid's mission), with
    the wrapper that drops it from a Dict (gymnasium's FilterObservation keeping the other keys)."""
    unread = [(keys, leaf) for keys, leaf in found if not isinstance(leaf, LEAVES)]
    if not unread:
        return
    keys, leaf = unread[0]
    dropped = {path[0] for path, sub in unread}
    keep = [str(key) for key in space.spaces if key not in dropped] if isinstance(space, gym.spaces.Dict) else []
    fix = f"drop it: env.wrappers=[{{_target_: gymnasium.wrappers.FilterObservation, filter_keys: " \
          f"[{', '.join(keep)}]}}]" if keep else "convert it with a wrapper of your own in env.wrappers"
    raise ConfigError(f"the observation entry {path_of(keys)!r} is a {type(leaf).__name__} space, and rlexp reads "
                      f"Dict and Tuple entries that are Box, Discrete, MultiDiscrete or MultiBinary; {fix}")


def path_of(keys: tuple[str | int, ...]) -> str:
    return ".".join(str(key) for key in keys)


def packable(space: gym.Space) -> bool:
    """Whether observations of `space` are packed: a Dict or a Tuple."""
    return isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple))


def layout_of(space: gym.Space) -> Layout:
    """The packed layout of a Dict or Tuple space: its leaves in order, each aligned to its itemsize."""
    entries: list[Entry] = []
    offset = 0
    found = leaves(space)
    check_leaves(space, found)
    for keys, leaf in found:
        dtype = stored_dtype(leaf)
        offset = -(-offset // dtype.itemsize) * dtype.itemsize
        entry = Entry(path_of(keys), keys, leaf, dtype, tuple(int(n) for n in leaf.shape or ()), offset)
        entries.append(entry)
        offset += entry.nbytes
    if not entries:
        raise ConfigError(f"the observation space {space} has no entries")
    return Layout(tuple(entries), max(ROW_ALIGN, -(-offset // ROW_ALIGN) * ROW_ALIGN))


def value_of(obs: Any, keys: tuple[str | int, ...]) -> Any:
    for key in keys:
        obs = obs[key]
    return obs


def pack(layout: Layout, obs: Any) -> np.ndarray:
    """One raw observation (a dict or tuple of the layout's entries) as its packed row (nbytes,), or a batch (each
    entry batched along its leading axes, as a vector env gives them) as (*batch, nbytes). A value that does not
    fit its entry is a ValueError naming it."""
    rows: np.ndarray | None = None
    lead: tuple[int, ...] = ()
    for entry in layout.entries:
        try:
            value = value_of(obs, entry.keys)
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"the observation has no entry {entry.path!r}") from None
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise ValueError(f"the observation's entry {entry.path!r} holds {array.dtype} data, not numbers")
        rank = array.ndim - len(entry.shape)
        if rank < 0 or array.shape[rank:] != entry.shape or rows is not None and array.shape[:rank] != lead:
            expected = f"{(*lead, *entry.shape)}" if rows is not None else f"{entry.shape} (or a batch of them)"
            raise ValueError(f"the observation's entry {entry.path!r} has shape {array.shape}, not {expected}")
        if rows is None:
            lead = array.shape[:rank]
            rows = np.zeros((*lead, layout.nbytes), np.uint8)
        stored = np.ascontiguousarray(array, dtype=entry.dtype).reshape(*lead, -1)
        rows[..., entry.offset:entry.offset + entry.nbytes] = stored.view(np.uint8)
    assert rows is not None   # a layout has at least one entry
    return rows


def unpack(layout: Layout, packed: np.ndarray) -> dict[str, np.ndarray]:
    """Packed rows (..., nbytes) back to each entry's values (..., *shape) in its stored dtype, by path (views)."""
    packed = np.ascontiguousarray(packed)
    lead = packed.shape[:-1]
    return {entry.path: packed[..., entry.offset:entry.offset + entry.nbytes].view(entry.dtype)
            .reshape((*lead, *entry.shape)) for entry in layout.entries}


class PackedBox(gym.spaces.Box):
    """The observation space of packed observations: Box(0, 255, (nbytes,), uint8), carrying the layout and the
    raw space it packs."""

    def __init__(self, layout: Layout, raw: gym.Space) -> None:
        super().__init__(0, 255, (layout.nbytes,), np.uint8)
        self.layout, self.raw = layout, raw

    def __repr__(self) -> str:
        return f"{self.raw} (packed: {self.layout.nbytes} bytes)"

    def seed(self, seed: int | None = None) -> Any:
        return self.raw.seed(seed)

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        """A sample of the raw space, packed (random bytes would not be observations of it)."""
        return pack(self.layout, self.raw.sample())


class PackObservation(gym.ObservationWrapper):
    """Dict and Tuple observations as packed rows (rlexp/envs/make.py puts it outermost, after env.wrappers and
    the env checks, which see the raw observation)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.layout = layout_of(env.observation_space)
        self.observation_space = PackedBox(self.layout, env.observation_space)

    def observation(self, observation: Any) -> np.ndarray:
        return pack(self.layout, observation)

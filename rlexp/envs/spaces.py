"""The runtime facts about an env's spaces that agents and replay memory are built from."""

from __future__ import annotations

from dataclasses import dataclass, replace

import gymnasium as gym
import numpy as np

from rlexp.config.actions import ActionKind
from rlexp.envs.packing import Entry, PackedBox
from rlexp.errors import ConfigError


@dataclass(frozen=True)
class SpaceInfo:
    obs_shape: tuple[int, ...]
    discrete: bool                     # a Discrete action space
    continuous: bool                   # a Box action space
    n_actions: int | None              # Discrete action spaces
    action_low: np.ndarray | None      # Box action spaces
    action_high: np.ndarray | None
    frames: bool                       # an image (rank-3 uint8 or float: stacked frames (k, H, W), RGB (H, W, C),
    #                                    ...; reads_as_image), read by the CNN (channel order: `channels_last`)
    flat: bool                         # read by an MLP once encoded (rlexp/networks/encoders.py): a Box that is
    #                                    not an image (any rank, flattened), Discrete and MultiDiscrete (one-hot),
    #                                    MultiBinary
    description: str                   # "<env id> (observations ..., actions ...)" for error messages
    obs_space: gym.Space               # what the networks' observation encoder is built from
    action_space: gym.Space | None = None
    channels_last: bool = False        # an image's channels are its last axis (the CNN transposes; storage keeps it)
    stacked: bool = False              # Atari's stacked frames (k, H, W): consecutive observations share k-1 frames,
    #                                    so off-policy replay stores each frame once (rlexp/replay/frames.py)
    cnn: str = "nature"                # what reads images: network.image.cnn (nature | impala)
    entries: tuple[Entry, ...] = ()    # a Dict/Tuple observation's entries (rlexp/envs/packing.py): observations
    #                                    are packed rows of bytes (obs_shape (nbytes,), uint8), read by the
    #                                    networks' multi-input encoder, one encoder per entry

    @property
    def multi_input(self) -> bool:
        """Dict or Tuple observations, packed (neither `frames` nor `flat`)."""
        return bool(self.entries)

    @property
    def images(self) -> bool:
        """Images for a CNN: the observation, or an entry of a Dict/Tuple one."""
        return self.frames or any(entry.image for entry in self.entries)

    @property
    def stored_once(self) -> bool:
        """Off-policy replay keeps each observation once (a transition's next one is its env's next): images,
        stacked or single, and Dict/Tuple observations with image entries (their packed bytes, rlexp/replay/)."""
        return self.images

    @property
    def action_nvec(self) -> tuple[int, ...] | None:
        """A MultiDiscrete action space's choices per component: one axis, choices from 0 (what the multi-action
        policies produce; others are refused, rlexp/agents/registry.py's check_fits)."""
        space = self.action_space
        if isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1 and not np.any(space.start):
            return tuple(int(n) for n in space.nvec)
        return None

    @property
    def action_bits(self) -> int | None:
        """A MultiBinary action space's number of bits (one axis)."""
        space = self.action_space
        return int(space.n) if isinstance(space, gym.spaces.MultiBinary) and isinstance(space.n, (int, np.integer)) \
            else None

    @property
    def action_kind(self) -> ActionKind | None:
        """Which of the action spaces the algorithms declare it is (ALGORITHM.actions), or None: none of them."""
        if self.discrete:
            return ActionKind.DISCRETE
        if self.continuous:
            return ActionKind.CONTINUOUS
        if self.action_nvec is not None:
            return ActionKind.MULTI_DISCRETE
        return ActionKind.MULTI_BINARY if self.action_bits is not None else None

    @property
    def obs_dtype(self) -> np.dtype:
        """What replay and rollouts store observations as: uint8 frames, integers for Discrete and MultiDiscrete
        (one integer per component, one-hot encoded only in the network), int8 for MultiBinary, float32 else."""
        if self.frames and self.obs_space.dtype != np.uint8:   # float images (network.image.enabled), as floats
            return np.dtype(np.float32)
        if self.frames or self.entries:   # (packed Dict/Tuple observations: bytes)
            return np.dtype(np.uint8)
        if isinstance(self.obs_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
            return np.dtype(np.int64)
        if isinstance(self.obs_space, gym.spaces.MultiBinary):
            return np.dtype(np.int8)
        return np.dtype(np.float32)

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.obs_shape))

    @property
    def action_shape(self) -> tuple[int, ...]:
        if self.action_nvec is not None:
            return (len(self.action_nvec),)
        if self.action_bits is not None:
            return (self.action_bits,)
        if not self.continuous:
            return ()
        assert self.action_low is not None   # set for every Box action space (describe_spaces)
        return tuple(self.action_low.shape)

    @property
    def bounded(self) -> bool:
        if not self.continuous:
            return False
        assert self.action_low is not None and self.action_high is not None
        return bool(np.all(np.isfinite(self.action_low)) and np.all(np.isfinite(self.action_high)))


def is_image(space: gym.Space) -> bool:
    """A Box of rank 3 in uint8: an image (channels first or last), for a CNN rather than flattened (SB3's
    `is_image_space` without its bounds check: uint8 images are what envs give)."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8


#: The channel counts an image's channel axis may have (grayscale, RGB, RGBA; SB3's `is_image_space_channels_first`
#: decides by the smallest axis); Atari's stacked frames, up to 16, are channel-first too.
CHANNELS = (1, 3, 4)
MAX_STACK = 16
#: The smallest side the Nature CNN reads: 8x8 stride 4, 4x4 stride 2 and 3x3 stride 1 leave 1x1 of 36x36.
NATURE_MIN_SIDE = 36
#: network.image.cnn's smallest side: IMPALA's padded convolutions and pools read any
MIN_SIDES = {"nature": NATURE_MIN_SIDE, "impala": 1}


def channels_first(shape: tuple[int, ...], override: bool | None = None) -> bool | None:
    """Whether an image of `shape` (rank 3) has its channels first (C, H, W), or last (H, W, C); None: neither
    axis can be channels. `override` (network.image.channels_first) decides when given. An axis of 1, 3 or 4 at
    both ends (e.g. (3, 64, 3)) is ambiguous: refused, naming the key, rather than guessed."""
    if override is not None:
        return override
    first = shape[0] <= MAX_STACK and shape[-1] > MAX_STACK or shape[0] in CHANNELS and shape[-1] not in CHANNELS
    last = shape[-1] in CHANNELS and shape[0] not in CHANNELS and shape[0] > MAX_STACK
    if shape[0] in CHANNELS and shape[-1] in CHANNELS:
        raise ConfigError(f"the image observations {shape} could have their channels first or last; set "
                          f"network.image.channels_first=true or false")
    return True if first else False if last else None


def reads_as_image(space: gym.Space, enabled: object = "auto", override: bool | None = None,
                   min_side: int = NATURE_MIN_SIDE) -> bool:
    """Whether a CNN reads `space` rather than an MLP its values flattened (`enabled`: network.image.enabled).
    auto: a rank-3 Box of uint8 (SB3's rule: what envs give), or of floats (a pixel wrapper's [0, 1] values) shaped
    as an image, its channel axis found unambiguously (`channels_first`) and its sides at least `min_side` (other
    float Boxes are flattened, as SB3 does); uint8: uint8 ones only (SB3's rule, the only
    images before the key); true: any rank-3 Box of uint8 or floats (one that cannot be read is refused in
    describe_spaces); false: none."""
    if enabled is False or not (isinstance(space, gym.spaces.Box) and len(space.shape) == 3):
        return False
    if space.dtype == np.uint8:
        return True
    if not np.issubdtype(space.dtype, np.floating):
        if enabled is True:
            raise ConfigError(f"network.image.enabled=true reads uint8 or float images, and the observations "
                              f"{space} are {space.dtype}; cast them (gymnasium.wrappers.DtypeObservation)")
        return False
    if enabled is True or enabled == "uint8":
        return enabled is True
    try:
        first = channels_first(tuple(space.shape), override)
    except ConfigError:   # channels at both ends: not an image to guess at, flattened as SB3 does
        return False
    return first is not None and min(space.shape[1:] if first else space.shape[:2]) >= min_side


def describe_spaces(obs_space: gym.Space, action_space: gym.Space, env_id: str, *,
                    image_channels_first: bool | None = None, stacked: bool = False,
                    image_enabled: object = "auto", image_cnn: str = "nature", torso: bool = False) -> SpaceInfo:
    """`image_channels_first`: network.image.channels_first; `stacked`: the observations are Atari's stacked
    frames (env.atari); `image_enabled`: network.image.enabled (reads_as_image); `image_cnn`: network.image.cnn;
    `torso`: network.torso names a module of the user's, which reads images of any size."""
    box = isinstance(obs_space, gym.spaces.Box)
    vector = isinstance(obs_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary))
    shape: tuple[int, ...] = tuple(obs_space.shape or ()) if box or vector else ()
    min_side = 1 if torso else MIN_SIDES[image_cnn]   # (network.torso: the user's module reads any size)
    image = reads_as_image(obs_space, image_enabled, image_channels_first, min_side)
    first = channels_first(shape, image_channels_first) if image else None
    if image and first is None and image_enabled is True:
        raise ConfigError(f"network.image.enabled=true, and {env_id}'s observations {shape} have no channel axis "
                          f"(1, 3 or 4 first or last, or up to {MAX_STACK} stacked frames first); set "
                          f"network.image.channels_first=true or false, or network.image.enabled=auto")
    frames = first is not None
    if frames:
        sides = shape[1:] if first else shape[:2]
        if min(sides) < min_side:
            raise ConfigError(f"{env_id}'s image observations {shape} are {sides[0]}x{sides[1]}, smaller than the "
                              f"{NATURE_MIN_SIDE}x{NATURE_MIN_SIDE} the Nature CNN reads; resize them (e.g. "
                              f"gymnasium.wrappers.ResizeObservation), read them with network.image.cnn=impala, "
                              f"or flatten them for an MLP (gymnasium.wrappers.FlattenObservation)")
    discrete = isinstance(action_space, gym.spaces.Discrete)
    continuous = isinstance(action_space, gym.spaces.Box)
    layout = obs_space.layout if isinstance(obs_space, PackedBox) else None
    packed = layout is not None
    return SpaceInfo(
        obs_shape=shape, discrete=discrete, continuous=continuous,
        n_actions=int(action_space.n) if isinstance(action_space, gym.spaces.Discrete) else None,
        action_low=action_space.low.copy() if isinstance(action_space, gym.spaces.Box) else None,
        action_high=action_space.high.copy() if isinstance(action_space, gym.spaces.Box) else None,
        frames=frames, flat=not packed and (vector or box and not image),
        description=f"{env_id} (observations {obs_space}, actions {action_space})", obs_space=obs_space,
        action_space=action_space, channels_last=frames and not first, stacked=frames and bool(first) and stacked,
        cnn=str(image_cnn),
        entries=image_entries(layout.entries, image_channels_first, MIN_SIDES[image_cnn]) if layout is not None else ())


def image_entries(entries: tuple[Entry, ...], override: bool | None,
                  min_side: int = NATURE_MIN_SIDE) -> tuple[Entry, ...]:
    """A Dict/Tuple observation's entries, each image among them (uint8, rank 3) marked with its channel order:
    the CNN (network.image.cnn) reads it. An image entry whose channels are on neither end, or smaller than the
    CNN reads (`min_side`: a MiniGrid-like 7x7 grid for the Nature CNN), is flattened for an MLP, as any other
    entry."""
    marked = []
    for entry in entries:
        first = None
        if is_image(entry.space):
            try:
                first = channels_first(entry.shape, override)
            except ConfigError as error:
                raise ConfigError(f"the observation entry {entry.path!r}: {error}") from None
            if first is not None and min(entry.shape[1:] if first else entry.shape[:2]) < min_side:
                first = None
        marked.append(entry if first is None else replace(entry, channels_last=not first))
    return tuple(marked)


def invalid_values(space: gym.Space, batch: np.ndarray) -> str | None:
    """What is wrong with a batch (first axis) of observations of a Discrete, MultiDiscrete or MultiBinary space,
    or None (a Box takes any finite number: its bounds are not enforced, as gymnasium does not in step). The one-hot
    encoding of a value out of its range would be all zeros: an observation the agent never saw, acted on silently."""
    if isinstance(space, gym.spaces.Discrete):
        low, high = np.int64(space.start), np.int64(space.start + space.n - 1)
    elif isinstance(space, gym.spaces.MultiDiscrete):
        start = np.asarray(getattr(space, "start", np.zeros_like(space.nvec)))
        low, high = start, start + space.nvec - 1
    elif isinstance(space, gym.spaces.MultiBinary):
        low, high = np.int64(0), np.int64(1)
    else:
        return None
    if batch.dtype.kind not in "biu":
        return f"{space} takes integers, not {batch.dtype} values"
    outside = (batch < low) | (batch > high)
    if outside.any():
        first = tuple(int(i) for i in np.argwhere(outside)[0])
        where = f"row {first[0]}" + (f", index {first[1:]}" if len(first) > 1 else "")
        return f"{int(outside.sum())} value(s) outside {space} (the first in {where}: {batch[first]})"
    return None


def invalid_entries(entries: tuple[Entry, ...], batch: np.ndarray) -> str | None:
    """What is wrong with a batch of packed Dict/Tuple observations (rlexp/envs/packing.py), entry by entry: a
    float that is not finite, an integer outside its Discrete, MultiDiscrete or MultiBinary space; or None."""
    rows = np.ascontiguousarray(batch)
    if rows.dtype != np.uint8:
        return f"{rows.dtype} values, not the packed bytes (uint8) of its Dict/Tuple observations"
    for entry in entries:
        values = rows[..., entry.offset:entry.offset + entry.nbytes].view(entry.dtype).reshape(
            (len(rows), *entry.shape))
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            return f"NaN or infinite value(s) in the entry {entry.path!r}"
        if (problem := invalid_values(entry.space, values)) is not None:
            return f"{problem} in the entry {entry.path!r}"
    return None

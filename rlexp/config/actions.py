"""The kinds of action space an algorithm may act in: what a registry entry declares (rlexp/config/registry.py) and
what an env's spaces are described by (rlexp/envs/spaces.py). A module of its own, importing nothing of rlexp, so
both read it without the one importing the other."""

from __future__ import annotations

from enum import Enum


class ActionKind(Enum):
    DISCRETE = "discrete"              # Discrete
    CONTINUOUS = "continuous"          # Box
    MULTI_DISCRETE = "multi-discrete"  # MultiDiscrete: one choice per component, each of its own number
    MULTI_BINARY = "multi-binary"      # MultiBinary: one bit per component

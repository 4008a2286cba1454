"""Environments: making them (single and vectorized), Atari preprocessing, spaces, episode replay for resume."""

from rlexp.envs.atari import AtariSettings, atari_settings
from rlexp.envs.make import VECTORIZATIONS, make_env, make_vector_env
from rlexp.envs.spaces import SpaceInfo, describe_spaces

__all__ = ["VECTORIZATIONS", "AtariSettings", "SpaceInfo", "atari_settings", "describe_spaces", "make_env",
           "make_vector_env"]

"""The agents: each owns its networks, exploration and update; the loop only calls the `Agent` interface."""

from rlexp.agents.base import Agent
from rlexp.agents.ddpg import DDPG
from rlexp.agents.dqn import DQN
from rlexp.agents.td3 import TD3

__all__ = ["Agent", "DDPG", "DQN", "TD3"]

"""rlexp: config-driven deep RL experiments (DQN, DDPG, TD3) from the command line."""

__version__ = "0.2.0"

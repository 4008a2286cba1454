"""Rainbow: Hessel et al. 2018, "Rainbow: Combining Improvements in Deep Reinforcement Learning".

https://arxiv.org/abs/1710.02298

DQN with its six improvements on together (conf/algo/rainbow.yaml): double Q-learning, prioritized replay on the
distributional loss, the dueling architecture, multi-step returns, C51's categorical distribution and noisy
networks. Each is a switch of rlexp/agents/dqn.py, so any can be turned off again (the paper's ablations:
`algo=rainbow algo.noisy=false`). Its own entry, so that `algo=rainbow` has its own tuned presets
(conf/tuned/rainbow_<env>.yaml) and runs are labelled by its name.
"""

from __future__ import annotations

import dataclasses

from rlexp.agents import dqn

ALGORITHM = dataclasses.replace(dqn.ALGORITHM, name="rainbow")

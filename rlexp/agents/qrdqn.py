"""QR-DQN: Dabney et al. 2018, "Distributional Reinforcement Learning with Quantile Regression".

https://arxiv.org/abs/1710.10044

DQN learning N quantiles of the return with the quantile Huber loss (`algo.distribution=quantile`, rlexp/agents/
distributional.py), as sb3-contrib's QRDQN; every other switch of DQN combines with it. Its own entry, so that
`algo=qrdqn` has its own defaults (conf/algo/qrdqn.yaml) and tuned presets (conf/tuned/qrdqn_<env>.yaml), and runs
are labelled by its name.
"""

from __future__ import annotations

import dataclasses

from rlexp.agents import dqn

ALGORITHM = dataclasses.replace(dqn.ALGORITHM, name="qrdqn")

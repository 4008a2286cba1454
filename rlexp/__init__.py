"""rlexp: config-driven deep RL experiments from the command line (DQN, DDPG, TD3, SAC, PPO, A2C).

`rlexp.load(run_dir)` gives a trained agent back as a Python object (rlexp/deploy/load.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

__all__ = ["Callback", "LoadedAgent", "Run", "__version__", "load"]

if TYPE_CHECKING:
    from rlexp.deploy.load import LoadedAgent, load
    from rlexp.runners.callbacks import Callback, Run


def __getattr__(name: str) -> Any:
    # Imported on first use: `rlexp --help` and the CLI's start do not pay for torch and gymnasium.
    if name in ("load", "LoadedAgent"):
        from rlexp.deploy import load as module

        return getattr(module, name)
    if name in ("Callback", "Run"):   # a callback's base class, and what its hooks are given (`callbacks=`)
        from rlexp.runners import callbacks

        return getattr(callbacks, name)
    raise AttributeError(f"module 'rlexp' has no attribute {name!r}")

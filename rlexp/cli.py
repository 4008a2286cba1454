"""`rlexp <command>`: the command-line entry point."""

from __future__ import annotations

import sys

USAGE = """usage: rlexp <command> [args]

commands:
  train    train an agent; arguments are Hydra overrides (rlexp train --help lists the config groups)
  eval     evaluate a run's saved agent: rlexp eval <run_dir> [episodes=N] [video=true] (rlexp eval --help)
  plot     learning curves of runs and sweeps, seeds pooled with a 95% CI: rlexp plot <dirs> (rlexp plot --help)

examples:
  rlexp train algo=td3 env=Pendulum-v1
  rlexp train algo=dqn env=CartPole-v1 seed=3 total_steps=30000 algo.lr=1e-3
  rlexp train --multirun algo=ddpg,td3 env=Pendulum-v1 seed=0,1,2
  rlexp train --cfg job algo=ddpg
  rlexp train resume=outputs/td3_Pendulum-v1/<time>
  rlexp eval outputs/td3_Pendulum-v1/<time> episodes=20 video=true
  rlexp plot outputs/multirun/<time> stat=iqm
  tensorboard --logdir outputs
"""


def is_option(arg: str) -> bool:
    """`key=value` of `rlexp eval` and `rlexp plot`, unless it names an existing path: a sweep's job
    directories have '=' in their names (`3_algo.lr=0.001,seed=1`)."""
    from pathlib import Path

    return "=" in arg and "/" not in arg.split("=", 1)[0] and not Path(arg).exists()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if args[0] in ("-V", "--version"):
        from rlexp import __version__

        print(f"rlexp {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command == "train":
        from rlexp.train import main as train_main

        sys.argv = ["rlexp-train", *rest]  # Hydra parses sys.argv
        train_main()
        return 0
    if command == "eval":
        from rlexp.evaluate import main as eval_main

        return eval_main(rest)
    if command == "plot":
        from rlexp.plot import main as plot_main

        return plot_main(rest)
    print(f"rlexp: error: unknown command {command!r}; commands: train, eval, plot (see rlexp --help)", file=sys.stderr)
    return 2

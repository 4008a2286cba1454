"""`rlexp <command>`: the command-line entry point, and each command's module (train, eval, plot)."""

from __future__ import annotations

import os
import signal
import sys

from rlexp.commands.streams import guard_standard_streams
from rlexp.errors import Interrupted, OutputLost, signals_interrupt

USAGE = """usage: rlexp <command> [args]

commands:
  train    train an agent; arguments are Hydra overrides (rlexp train --help lists the config groups)
  eval     evaluate a run's saved agent: rlexp eval <run_dir> [episodes=N] [video=true] (rlexp eval --help)
  plot     learning curves of runs and sweeps, seeds pooled with a 95% CI: rlexp plot <dirs> (rlexp plot --help)
  export   a run's policy as one standalone file: rlexp export <run_dir> format=onnx|torchscript|pt2

examples:
  rlexp train algo=td3 env=Pendulum-v1
  rlexp train algo=dqn env=CartPole-v1 seed=3 total_steps=30000 algo.lr=1e-3
  rlexp train algo=dqn env=CartPole-v1 env.num_envs=8          (8 envs stepping together)
  rlexp train --multirun algo=ddpg,td3 env=Pendulum-v1 seed=0,1,2
  rlexp train --cfg job algo=ddpg
  rlexp train resume=outputs/td3_Pendulum-v1/<time>
  rlexp eval outputs/td3_Pendulum-v1/<time> episodes=20 video=true
  rlexp plot outputs/multirun/<time> stat=iqm
  rlexp export outputs/td3_Pendulum-v1/<time> format=onnx
  tensorboard --logdir outputs
"""

COMMANDS = ("train", "eval", "plot", "export")


def _dispatch(args: list[str]) -> int:
    if not args:
        print("rlexp: error: give a command: train, eval, plot or export (rlexp --help)", file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if args[0] in ("-V", "--version"):
        from rlexp import __version__

        print(f"rlexp {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command == "train":
        from rlexp.commands.train import main as train_main

        sys.argv = ["rlexp-train", *rest]  # Hydra parses sys.argv
        train_main()
        return 0
    if command == "eval":
        from rlexp.commands.eval import main as eval_main

        return eval_main(rest)
    if command == "plot":
        from rlexp.commands.plot import main as plot_main

        return plot_main(rest)
    if command == "export":
        from rlexp.commands.export import main as export_main

        return export_main(rest)
    print(f"rlexp: error: unknown command {command!r}; commands: {', '.join(COMMANDS)} (rlexp --help)",
          file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Runs a command; output cut short by a closed pipe (`rlexp train --help | head`) ends quietly, as in other
    Unix tools, with the exit status of a process killed by SIGPIPE. SIGINT and SIGTERM at any moment end it with one
    line on stderr and the signal's exit status (130, 143): they raise `Interrupted` wherever the command is (its
    imports included), and each command's cleanup runs as the exception passes (a training loop takes them in first,
    to save a checkpoint: rlexp/runners/faults.py StopRequest)."""
    args = sys.argv[1:] if argv is None else argv
    command = f"rlexp {args[0]}" if args and args[0] in COMMANDS else "rlexp"
    stdout = sys.stdout
    guard_standard_streams()   # stdout closed, full or unable to encode: one line (rlexp/commands/streams.py)
    try:
        try:
            with signals_interrupt():
                return _dispatch(args)
        except KeyboardInterrupt as stop:   # Interrupted, or Ctrl-C where no handler of ours was in place
            interrupt = stop if isinstance(stop, Interrupted) else Interrupted(signal.SIGINT)
            if args[:1] == ["train"] and not interrupt.context:   # its imports, Hydra composing the config
                interrupt = interrupt.during("before training started")
            print(f"{command}: {interrupt}", file=sys.stderr)
            return interrupt.exit_code
        finally:
            # Buffered output (PYTHONUNBUFFERED unset) small enough to sit in the buffer meets the closed pipe only
            # here, also when Hydra ends with sys.exit: flush while the error can still be caught.
            sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the flush of the dead stdout at exit too: point stdout at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OutputLost as lost:   # (--help, --cfg job, a subcommand's report: rlexp train's run only warns)
        print(f"{command}: error: {lost}", file=sys.stderr)
        return 1
    finally:
        sys.stdout = stdout   # (a caller in this process gets its own stream back)

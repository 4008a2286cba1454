"""A run that does not compile never imports torch._dynamo (with sympy, about 0.9 s of every run's start):
torch's optimizers import it at their first call unless rlexp calls their undecorated methods
(rlexp/networks/optimizers.py), and so does a forward pass on the meta device, where rlexp counts parameters. Nor does
it import a tracker's package (MLflow, W&B) that log.backends does not select."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

#: The paths that touch every optimizer method and meta-device network: a batched PPO whose seeds stop at their
#: own minibatch (MemberAdam), SAC trained, checkpointed and resumed (state_dict, load_state_dict), A2C (RMSprop)
#: on Atari frames (the Nature CNN counted on the meta device).
RUNS = [
    ["algo=ppo", "env=CartPole-v1", "seeds=[0,1]", "algo.target_kl=0.01", "total_steps=128", "algo.n_steps=32",
     "env.num_envs=2", "algo.batch_size=32", "hydra.run.dir=ppo"],
    ["algo=sac", "env=Pendulum-v1", "total_steps=120", "algo.learning_starts=60", "checkpoint.every=60",
     "hydra.run.dir=sac"],
    ["resume=sac", "total_steps=180"],
    ["algo=a2c", "env=atari", "env.id=ALE/Pong-v5", "total_steps=16", "env.num_envs=2", "algo.n_steps=8",
     "eval.max_episode_steps=8", "hydra.run.dir=a2c"],
]

SCRIPT = textwrap.dedent("""
    import sys
    from rlexp.commands import main
    for args in {runs}:
        try:
            main(["train", *args, *([] if args[0].startswith("resume=") else {common})])
        except SystemExit as stop:
            assert not stop.code, (args, stop.code)
    print([name for name in sys.modules if name.startswith(("mlflow", "wandb"))])   # (trackers not selected)
    print([name for name in sys.modules if name.startswith("torch._dynamo")])
""")


def test_training_evaluating_and_resuming_without_compile_never_import_torch_dynamo(tmp_path: Path) -> None:
    common = ["eval.episodes=1", "log.progress=none", "torch_threads=1"]
    script = SCRIPT.format(runs=RUNS, common=common)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-2:] == ["[]", "[]"]
    assert all((tmp_path / run / "results.json").exists() for run in ("sac", "a2c", "ppo/seed_0", "ppo/seed_1"))

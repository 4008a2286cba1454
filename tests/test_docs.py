"""Every documented command works: each `rlexp ...` command in the fenced shell blocks of README.md and
docs/**/*.md, and each fenced Python block, run at a tiny budget (or, marked long-running, composed).

What is collected (`collect`): the fenced blocks of language bash, sh, shell, console, zsh or none, and python.
In a shell block every line is a command (in a console block only the lines after a `$ ` prompt); a trailing `\\`
continues a line; a `#` starting a word outside quotes starts a comment (as in bash: `'a # b'` and `a#b` are
kept); `;`, `&&`, `||`, `|` and `&` separate commands; `NAME=value` words before `rlexp` are its environment; every
command that is not `rlexp` (pip, python, mkdocs, tensorboard, optuna-dashboard, mlflow, wandb, cd, ...) is
skipped. Identical commands run once, under the id of their first place (`README.md:24`, `docs/x.md:7.2` for the
second command of a line).

Two tiers. In the default suite every command that trains is checked in this process as `rlexp train` checks it
before it runs (`test_documented_command_composes`: its arguments, then its first job's config composed and
validated: a key, option or range renamed in the code fails there), and every other command (eval, plot, export,
resume, --cfg, --help) and Python block runs. Under `-m slow` (which .ci/run runs after the suite) every command
that trains runs too, as below: about 3 minutes on 2 cores, more than the default suite can spend.

How a command runs (`test_documented_command`): in a fresh directory (pytest's tmp_path, so `outputs/` lands
there), as a user types it (`rlexp <args>`: tests/conftest.py's `run_cli`, a `python -m rlexp` forked from a warm
interpreter; a command whose environment differs, e.g. PYTHONPATH for the docs' `my_package`, runs in a new
interpreter), its exit status asserted 0. Its placeholders are replaced first (PLACEHOLDERS below: each copies a
run made once per session into the directory, see RUNS), then `rlexp train` gets a tiny budget (`tiny_budget`:
total_steps, learning_starts and buffer_size or one rollout, one short evaluation, no periodic checkpoints; an
Optuna search one trial, or n_jobs trials, of two seeds; `seeds=[...]` and a `seed=a,b,c` sweep their first two
seeds, a seed sweep beside another swept key its first seed), a resume a budget extension of its run, `rlexp eval`
2 episodes and `rlexp export` 64 states.

The docs' markers:
- a trailing comment containing `long-running` (GPU rows, 1M-step benchmarks, Ray and SLURM clusters): the command
  is not run, only composed and validated as above (a sweep through its first job: each sweep's first value, an
  Optuna interval's lower bound); other long-running commands are skipped.
- `compile=true` (torch.compile's inductor build on the CPU: about 90 s a run here) is marked `slow`.
- what this machine cannot run and the test can tell (REQUIREMENTS: an extra's module that does not import, no
  CUDA, no SLURM) is skipped with that reason.
- a Python block whose first line names a file (`# my_package/envs.py`) is written there under a directory put on
  PYTHONPATH for the commands of the same markdown file that name its package, and imported; any other Python block
  runs as a script in a fresh directory, its placeholders (in string literals) replaced as a command's.

RLEXP_DOCS_README=<path> reads that file instead of README.md (e.g. a frozen copy), RLEXP_DOCS_DIR=<dir> that
directory's **/*.md instead of docs/'s (a directory without any: the README alone).
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import importlib
import itertools
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from omegaconf import OmegaConf

from tests.conftest import ROOT, cli_env, compose_config, made_once, run_cli, train_in_process

README = Path(os.environ.get("RLEXP_DOCS_README") or ROOT / "README.md")
DOCS = Path(os.environ.get("RLEXP_DOCS_DIR") or ROOT / "docs")

SHELL = {"", "bash", "sh", "shell", "console", "zsh", "shell-session"}
PYTHON = {"python", "py", "python3"}
LONG_RUNNING = "long-running"

# ---------------------------------------------------------------------------------------------------------------
# The collector


@dataclasses.dataclass(frozen=True)
class Command:
    """One documented `rlexp` command: where it is, its arguments after `rlexp`, its environment words."""

    where: str                       # "README.md:24", "docs/usage.md:7.2"
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    comment: str = ""
    seeds_block: bool = False        # its block names <run_dir>/seed_<s>: its <run_dir> is a many-seeds run
    doc: str = ""                    # the markdown file
    packages: tuple[str, ...] = ()   # the packages its file's `# my_package/x.py` blocks write
    also: tuple[str, ...] = ()       # the other places the same command is documented

    @property
    def long_running(self) -> bool:
        return LONG_RUNNING in self.comment.lower()

    @property
    def text(self) -> str:
        return " ".join(["rlexp", *(shlex.quote(a) for a in self.argv)])


@dataclasses.dataclass(frozen=True)
class Snippet:
    """One fenced Python block: its file (`# my_package/envs.py` as its first line) or None, and its code."""

    where: str
    code: str
    module_path: str | None
    doc: str


_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_HEADER = re.compile(r"^#\s*(?P<path>[A-Za-z_]\w*(?:/[A-Za-z_]\w*)*\.py)\s*$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")


def fenced_blocks(text: str) -> list[tuple[str, int, list[tuple[int, str]]]]:
    """(language, first content line, [(line number, line)]) of each fenced block of a markdown text."""
    blocks: list[tuple[str, int, list[tuple[int, str]]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        info = opening["info"].strip().lstrip("{").lstrip(".")
        language = info.split()[0].rstrip("}").lower() if info else ""
        body: list[tuple[int, str]] = []
        i += 1
        while i < len(lines):
            closing = _FENCE.match(lines[i])
            if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence) \
                    and not closing["info"].strip():
                break
            line = lines[i]
            body.append((i + 1, line[indent:] if not line[:indent].strip() else line.lstrip()))
            i += 1
        blocks.append((language, body[0][0] if body else i, body))
        i += 1
    return blocks


def split_shell(line: str) -> tuple[list[str], str]:
    """A logical shell line's commands (split at `;`, `&&`, `||`, `|`, `&` outside quotes) and its comment (from a
    `#` that starts a word outside quotes: bash's rule)."""
    segments, current, comment = [], [], ""
    quote: str | None = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            current.append(c)
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"' and i + 1 < len(line):
                current.append(line[i + 1])
                i += 1
        elif c == "\\" and i + 1 < len(line):
            current += [c, line[i + 1]]
            i += 1
        elif c in "'\"":
            quote = c
            current.append(c)
        elif c == "#" and (i == 0 or line[i - 1] in " \t;&|"):
            comment = line[i + 1:].strip()
            break
        elif c == "&" and (line[i - 1:i] in ("<", ">") or line.startswith(">", i + 1)):
            current.append(c)   # a redirection (2>&1, &>), not a separator
        elif line.startswith(("&&", "||"), i) or c in ";|&":
            if line.startswith(("&&", "||"), i):
                i += 1
            segments.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    segments.append("".join(current))
    return [s.strip() for s in segments if s.strip()], comment


def logical_lines(body: list[tuple[int, str]], console: bool) -> list[tuple[int, str]]:
    """A shell block's commands as (first line number, text): prompts removed (a console block's lines without
    one are output), `\\`-continued lines joined, comment-only and empty lines dropped."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in body:
        text = raw.strip()
        if pending is None:
            if text.startswith("$ ") or text == "$":
                text = text[1:].strip()
            elif console:
                continue
            start, joined = number, text
        else:
            if console and text.startswith("> "):
                text = text[2:]
            start, joined = pending[0], f"{pending[1]} {text}"
        _, comment = split_shell(joined)
        if not comment and joined.endswith("\\") and not joined.endswith("\\\\"):
            pending = (start, joined[:-1].rstrip())
            continue
        pending = None
        if joined and not joined.startswith("#"):
            out.append((start, joined))
    if pending is not None and pending[1]:
        out.append(pending)
    return out


def rlexp_words(segment: str) -> tuple[list[tuple[str, str]], list[str]] | None:
    """A command's environment words and its arguments after `rlexp`, or None when it is not an `rlexp` command."""
    if not re.match(r"^(?:[A-Za-z_]\w*=\S*\s+)*rlexp(?:\s|$)", segment):
        return None
    # A placeholder is one word even with spaces in it (<run or checkpoint.pt>, <atari sweep>).
    protected = re.sub(r"<[^<>\s'\"][^<>'\"]*>", lambda m: m[0].replace(" ", "\0"), segment)
    words = [w.replace("\0", " ") for w in shlex.split(protected)]
    env = []
    while _ASSIGNMENT.match(words[0]):
        key, _, value = words.pop(0).partition("=")
        env.append((key, value))
    words = words[1:]
    argv: list[str] = []
    skip = False
    for word in words:   # redirections are the shell's, not arguments
        if skip:
            skip = False
        elif re.fullmatch(r"\d*>>?|&>>?|<", word):
            skip = True
        elif re.match(r"^(\d*>>?|&>>?)\S", word):
            continue
        else:
            argv.append(word)
    return env, argv


def collect(text: str, where: str) -> tuple[list[Command], list[Snippet]]:
    """The `rlexp` commands and Python blocks of one markdown text, `where` naming it in their ids."""
    commands: list[Command] = []
    snippets: list[Snippet] = []
    blocks = fenced_blocks(text)
    for language, first, body in blocks:
        if language in PYTHON:
            code = "\n".join(line for _, line in body) + "\n"
            header = _HEADER.match(body[0][1].strip()) if body else None
            snippets.append(Snippet(f"{where}:{first}", code, header["path"] if header else None, where))
    packages = tuple(sorted({s.module_path.split("/")[0].removesuffix(".py") for s in snippets if s.module_path}))
    for language, _, body in blocks:
        if language not in SHELL:
            continue
        seeds_block = any(re.search(r"<run_dir>/seed_", line) for _, line in body)
        for number, line in logical_lines(body, console=language in {"console", "shell-session"}):
            segments, comment = split_shell(line)
            found = [words for words in map(rlexp_words, segments) if words is not None]
            for i, (env, argv) in enumerate(found, 1):
                place = f"{where}:{number}" + (f".{i}" if len(found) > 1 else "")
                commands.append(Command(place, tuple(argv), tuple(env), comment, seeds_block, where, packages))
    return commands, snippets


def doc_files() -> list[tuple[Path, str]]:
    """README (RLEXP_DOCS_README, if set) and docs/**/*.md, each with the name its ids give it."""
    def name(path: Path) -> str:
        try:
            return str(path.resolve().relative_to(ROOT))
        except ValueError:
            return path.name
    files = [README] if README.exists() else []
    files += sorted(DOCS.glob("**/*.md")) if DOCS.is_dir() else []
    return [(path, name(path)) for path in files]


def dedupe(commands: list[Command]) -> list[Command]:
    """Each command once, at its first place (the others in `also`). What a command means may depend on its file
    (its my_package) and block (a many-seeds <run_dir>), so those count where the command uses them."""
    first: dict[tuple, Command] = {}
    for command in commands:
        text = " ".join(command.argv)
        key = (command.argv, command.env, command.long_running,
               command.seeds_block and "<run_dir>" in text,
               command.doc if uses_package(command) else "")
        if key in first:
            kept = first[key]
            first[key] = dataclasses.replace(kept, also=(*kept.also, command.where))
        else:
            first[key] = command
    return list(first.values())


@functools.cache
def all_docs() -> tuple[list[Command], list[Snippet]]:
    commands: list[Command] = []
    snippets: list[Snippet] = []
    for path, name in doc_files():
        found, blocks = collect(path.read_text(encoding="utf-8"), name)
        commands += found
        snippets += blocks
    return dedupe(commands), snippets


def uses_package(command: Command) -> bool:
    """Whether the command names a module of its file's package (`my_package.callbacks.StopWhenFlat`)."""
    text = " ".join(command.argv)
    return any(re.search(rf"(?<![\w.]){re.escape(p)}[.:]", text) for p in command.packages)


# ---------------------------------------------------------------------------------------------------------------
# What this machine can run

def _imports(*modules: str) -> bool:
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception:   # an extra's module that is missing, or broken
            return False
    return True


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


#: (pattern over the command's arguments, can this machine run it, the reason when not). Checked before a command
#: runs or composes; the first failing one skips it with its reason.
REQUIREMENTS: list[tuple[str, Callable[[], bool], str]] = [
    (r"env\.vectorization=envpool", lambda: _imports("envpool"), "envpool does not import (rlexp[envpool])"),
    (r"env=atari|ALE/|experiment=der", lambda: _imports("ale_py", "cv2"), "ale_py/cv2 do not import (rlexp[atari])"),
    (r"HalfCheetah|Hopper|Walker2d|Humanoid|Swimmer|Reacher|InvertedPendulum|Pusher|\bAnt-v",
     lambda: _imports("mujoco"), "mujoco does not import (rlexp[mujoco])"),
    (r"LunarLander|BipedalWalker|CarRacing", lambda: _imports("Box2D"), "Box2D does not import (rlexp[box2d])"),
    (r"MiniGrid", lambda: _imports("minigrid"), "minigrid does not import (pip install \"rlexp[minigrid]\")"),
    (r"gymnasium_robotics", lambda: _imports("gymnasium_robotics"),
     "gymnasium_robotics does not import (pip install \"rlexp[robotics]\")"),
    (r"hydra/launcher=joblib", lambda: _imports("hydra_plugins.hydra_joblib_launcher"),
     "hydra-joblib-launcher is not installed (rlexp[sweep])"),
    (r"hydra/launcher=ray", lambda: _imports("hydra_plugins.hydra_ray_launcher", "ray"),
     "hydra-ray-launcher is not installed (pip install \"rlexp[ray]\")"),
    (r"hydra/launcher=submitit", lambda: _imports("hydra_plugins.hydra_submitit_launcher"),
     "hydra-submitit-launcher is not installed (rlexp[slurm])"),
    (r"hparams_search=|hydra/sweeper=rlexp_optuna", lambda: _imports("optuna"),
     "optuna does not import (rlexp[sweep])"),
    (r"log\.backends=.*wandb", lambda: _imports("wandb"), "wandb does not import (rlexp[wandb])"),
    (r"log\.backends=.*mlflow", lambda: _imports("mlflow"), "mlflow does not import (rlexp[mlflow])"),
    (r"format=onnx", lambda: _imports("onnx", "onnxscript", "onnxruntime"), "onnx does not import (rlexp[export])"),
    (r"video=true", lambda: _imports("imageio", "imageio_ffmpeg"), "imageio does not import (rlexp[video])"),
    (r"embed=true", lambda: _imports("sklearn", "matplotlib"), "scikit-learn does not import (rlexp[embed])"),
    (r"^plot\b", lambda: _imports("matplotlib", "scipy"), "matplotlib does not import (rlexp[plot])"),
]
#: Checked only for a command that runs (composing needs neither).
RUN_REQUIREMENTS: list[tuple[str, Callable[[], bool], str]] = [
    (r"hydra/launcher=submitit_slurm", lambda: shutil.which("sbatch") is not None, "no SLURM here (sbatch)"),
    (r"hydra\.launcher\.ray\.init\.address=(?!null)", lambda: False, "needs a running Ray cluster"),
    (r"device=['\"]?cuda", _cuda, "needs CUDA (device=cuda), which this machine lacks"),
]


def skip_reason(text: str, runs: bool) -> str | None:
    for pattern, available, reason in REQUIREMENTS + (RUN_REQUIREMENTS if runs else []):
        if re.search(pattern, text) and not available():
            return reason
    return None


# ---------------------------------------------------------------------------------------------------------------
# The runs the placeholders stand for, made once per session (tests/conftest.py: made_once) and copied into a test's
# directory for each command that names one (eval, export, plot and resume write into them).

TINY = ["eval.episodes=1", "eval.max_episode_steps=100", "log.heldout_states=0", "log.progress=none",
        "torch_threads=1"]
OFF_POLICY = ["algo.buffer_size=1000"]
#: name -> (the command that makes it, in the fixture's directory; whether it trains in process). Kept tiny: they
#: only have to exist, with checkpoints, evaluations and a finished training episode (Pendulum's are 200 steps).
FIXTURES: dict[str, tuple[list[str], bool]] = {
    # a single run: <run_dir>, <run>, outputs/td3_Pendulum-v1/<time>; two step checkpoints and a best.pt
    "run": (["train", "algo=td3", "env=Pendulum-v1", "total_steps=400", "algo.learning_starts=384", *OFF_POLICY,
             "eval.every=200", "checkpoint.every=200", *TINY, "hydra.run.dir=run"], True),
    # a many-seeds run: <run_dir>/seed_<s> (and <run_dir> in a block that names one); its seeds are DQN CartPole runs
    "seeds": (["train", "algo=dqn", "env=CartPole-v1", "seeds=[0,1]", "total_steps=200", "algo.learning_starts=184",
               *OFF_POLICY, "eval.every=200", "checkpoint.every=0", *TINY, "hydra.run.dir=run"], True),
    # a sweep of two jobs: outputs/multirun/<time>; its jobs are DDPG and TD3 runs on Pendulum-v1
    "sweep": (["train", "--multirun", "algo=ddpg,td3", "env=Pendulum-v1", "seed=0", "total_steps=200",
               "algo.learning_starts=184", *OFF_POLICY, "eval.every=200", "checkpoint.every=0", *TINY,
               "hydra.sweep.dir=run"], False),
    # a sweep of DER on two Atari games (4 updates each): outputs/multirun/<atari sweep>, outputs/der_*
    "atari": (["train", "--multirun", "experiment=der", "env.id=ALE/Pong-v5,ALE/Breakout-v5", "seed=0",
               "total_steps=200", "algo.learning_starts=196", *OFF_POLICY, "eval.every=200", "checkpoint.every=0",
               *TINY, "hydra.sweep.dir=run"], False),
}


def make_fixture(name: str, directory: Path) -> dict[str, Any]:
    args, in_process = FIXTURES[name]
    proc = train_in_process(args, directory) if in_process else run_cli(args, cwd=directory, timeout=600)
    assert proc.returncode == 0, f"the docs' fixture {name} ({' '.join(args)}) failed:\n{proc.stderr[-3000:]}"
    run = directory / "run"
    runs = {}   # (algo, env id) of each run below it -> its path relative to run/
    for config in sorted(run.glob("**/.hydra/config.yaml")):
        saved = OmegaConf.load(config)
        if "seeds" in saved and saved.seeds and config.parent.parent == run:
            continue   # a many-seeds run's parent: its seeds are the runs
        runs[f"{saved.algo.name} {saved.env.id}"] = str(config.parent.parent.relative_to(run))
    return {"total_steps": int(next(a for a in args if a.startswith("total_steps=")).split("=")[1]),
            "runs": runs, "seeds": sorted(int(p.name[5:]) for p in run.glob("seed_*"))}


class Fixtures:
    """The placeholder runs, each made on first use (by whichever xdist worker asks first)."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.made: dict[str, tuple[Path, dict[str, Any]]] = {}

    def get(self, name: str) -> tuple[Path, dict[str, Any]]:
        if name not in self.made:
            directory, meta = made_once(self.factory, f"docs-{name}", lambda d: make_fixture(name, d))
            self.made[name] = directory / "run", meta
        return self.made[name]

    def run_of(self, algo: str, env: str) -> tuple[Path, dict[str, Any]]:
        """A run of `algo` on `env` among the fixtures (RUNS), its directory and its fixture's data."""
        for name in RUNS.get((algo, env), []):
            root, meta = self.get(name)
            if f"{algo} {env}" in meta["runs"]:
                return root / meta["runs"][f"{algo} {env}"], meta
        pytest.fail(f"no fixture run of {algo} on {env} for outputs/{algo}_{env}: add one to RUNS in "
                    f"tests/test_docs.py")


#: outputs/<algo>_<env>[/<time>] -> the fixtures holding a run of that algo on that env.
RUNS = {("td3", "Pendulum-v1"): ["run"], ("ddpg", "Pendulum-v1"): ["sweep"], ("dqn", "CartPole-v1"): ["seeds"]}

ALGOS = "|".join(sorted((p.stem for p in (ROOT / "conf" / "algo").glob("*.yaml")), key=len, reverse=True))
DATE = r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d"
A_DATE = "2026-01-01_00-00-00"   # where <time> was written


class Workspace:
    """A test's directory, and the placeholders of its command resolved there."""

    def __init__(self, cwd: Path, fixtures: Fixtures, command: Command | None) -> None:
        self.cwd, self.fixtures, self.command = cwd, fixtures, command
        self.resumed_steps: int | None = None   # the total_steps of the fixture a placeholder named

    def place(self, source: Path, meta: dict[str, Any], dest: str) -> str:
        target = self.cwd / dest
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source, target, symlinks=True)
        self.resumed_steps = meta["total_steps"]
        return dest

    # Each handler: the match -> what the command says instead (a path in the test's directory).
    def run_dir(self, m: re.Match) -> str:
        if self.command is not None and self.command.seeds_block:
            return self.place(*self.fixtures.get("seeds"), "seeds_run")
        return self.place(*self.fixtures.get("run"), "run_dir")

    def seed_dir(self, m: re.Match) -> str:
        root, meta = self.fixtures.get("seeds")
        seed = int(m["seed"]) if m["seed"].isdigit() and int(m["seed"]) in meta["seeds"] else meta["seeds"][-1]
        return f"{self.place(root, meta, 'seeds_run')}/seed_{seed}"

    def run(self, m: re.Match) -> str:
        return self.place(*self.fixtures.get("run"), "run")

    def checkpoint(self, m: re.Match) -> str:
        return f"{self.place(*self.fixtures.get('run'), 'run')}/checkpoints/final.pt"

    def atari_sweep(self, m: re.Match) -> str:
        return self.place(*self.fixtures.get("atari"), "outputs/multirun/atari_sweep")

    def der_runs(self, m: re.Match) -> str:
        self.place(*self.fixtures.get("atari"), "outputs/der_atari")
        return m[0]   # the glob stays, as the shell expands it

    def sweep(self, m: re.Match) -> str:
        return self.place(*self.fixtures.get("sweep"), m[0].replace("<time>", A_DATE))

    def dated_run(self, m: re.Match) -> str:
        source, meta = self.fixtures.run_of(m["algo"], m["env"])
        dest = self.place(source, meta, f"outputs/{m['algo']}_{m['env']}/{m['date'].replace('<time>', A_DATE)}")
        if m["step"]:
            steps = sorted(source.glob("checkpoints/step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
            assert steps, f"the fixture run of {m['algo']} on {m['env']} has no step checkpoint"
            return f"{dest}/checkpoints/{steps[0].name}"
        if m["export"] and not (self.cwd / dest / m["export"].lstrip("/")).exists():   # exported first, as the docs do
            fmt = {".onnx": "onnx", ".pt": "torchscript", ".pt2": "pt2"}[Path(m["export"]).suffix]
            proc = run_cli(["export", dest, f"format={fmt}", "states=64",
                            *(["checkpoint=best"] if "_best" in m["export"] else [])], cwd=self.cwd)
            assert proc.returncode == 0, f"exporting the fixture run for {m[0]} failed: {proc.stderr[-2000:]}"
        return dest + (m["export"] or "")

    def runs_of(self, m: re.Match) -> str:
        source, meta = self.fixtures.run_of(m["algo"], m["env"])
        self.place(source, meta, f"outputs/{m['algo']}_{m['env']}/{A_DATE}")
        return m[0]

    def resolve(self, text: str) -> str:
        """`text` (an argument, a Python string literal) with every known placeholder replaced; an unknown
        `<...>` fails the test."""
        for pattern, handler, _ in PLACEHOLDERS:
            text = re.sub(pattern, lambda m, h=handler: h(self, m), text)
        unknown = re.search(r"<[^<>\s][^<>]*>", text)
        if unknown:
            where = self.command.where if self.command else "a Python block"
            pytest.fail(f"{where}: unknown placeholder {unknown[0]}: add it to PLACEHOLDERS in tests/test_docs.py",
                        pytrace=False)
        return text


#: The placeholders the docs use, in the order they are tried: (regex, handler, what it stands for).
PLACEHOLDERS: list[tuple[str, Callable[[Workspace, re.Match], str], str]] = [
    (r"<run_dir>/seed_(?P<seed>\d+|<s>)", Workspace.seed_dir,
     "a seed of a many-seeds run: the `seeds` fixture's (DQN CartPole seeds=[0,1]; an absent seed -> its last)"),
    (r"<run_dir>", Workspace.run_dir,
     "a run: the `run` fixture (TD3 Pendulum), or the `seeds` fixture in a block that names <run_dir>/seed_<s>"),
    (r"<run or checkpoint\.pt>|<run>", Workspace.run, "a run: the `run` fixture"),
    (r"<checkpoint\.pt>", Workspace.checkpoint, "a checkpoint file: the `run` fixture's checkpoints/final.pt"),
    (r"outputs/multirun/<atari sweep>", Workspace.atari_sweep, "a sweep on Atari games: the `atari` fixture"),
    (r"(?<![\w/])outputs/der_\*", Workspace.der_runs,
     "directories of DER runs: the `atari` fixture as outputs/der_atari"),
    (rf"(?<![\w/])outputs/multirun/(?:<time>|{DATE})", Workspace.sweep, "a sweep: the `sweep` fixture (DDPG, TD3)"),
    (rf"(?<![\w/])outputs/(?P<algo>{ALGOS})_(?P<env>[\w.-]+)/(?P<date><time>|{DATE})"
     r"(?:(?P<step>/checkpoints/step_\d+\.pt)|(?P<export>/export/policy(?:_best)?\.(?:onnx|pt2|pt)))?",
     Workspace.dated_run, "a dated run directory: a fixture run of that algo and env (RUNS); its step checkpoint: the "
     "fixture's first; its export/policy[_best].onnx|pt|pt2: exported first (rlexp export ... states=64)"),
    (rf"(?<![\w/=])outputs/(?P<algo>{ALGOS})_(?P<env>[\w.-]+)(?![\w/.-])", Workspace.runs_of,
     "the runs of an algo on an env: a fixture run of them copied below it (RUNS)"),
]
#: An argument `...` is the docs' elision ("and the rest of your overrides"): dropped.
ELISION = "..."


def expand_globs(argv: list[str], cwd: Path) -> list[str]:
    """As the shell expands an unquoted `*` or `?` that matches (a word that matches nothing stays)."""
    out: list[str] = []
    for word in argv:
        matches = sorted(glob.glob(word, root_dir=cwd)) if re.search(r"[*?]", word) and "=" not in word else []
        out += matches or [word]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Budgets

T_OFF = 200          # off-policy env steps: 16 updates after learning_starts (at one update per step)
UPDATES = 16
ROLLOUT = 64         # on-policy: a rollout of about this many samples, one of them
EVAL = {"eval.episodes": "1", "eval.max_episode_steps": "100", "checkpoint.every": "0", "log.heldout_states": "0",
        "log.progress": "lines"}
#: Keys whose sweep values may change what the budget must be: every value is composed.
GEOMETRY = {"algo", "env", "env.id", "env.num_envs", "experiment", "hparams_search", "algo.n_steps", "algo.batch_size"}
SEEDS_KEPT = 2       # `seeds=[a,b,c,...]` keeps its first two seeds, a `seed=a,b,c,...` sweep too (its first
#                      seed only beside another swept key: the sweep keeps two jobs or more)
RUNS_ONLY = {"--cfg", "-c", "--help", "-h", "--info", "-i", "--hydra-help", "--shell-completion", "-sc"}


def _parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    return OverridesParser.create()


def sweep_values(override: Any) -> list[str]:
    """A sweep override's values as override strings (an interval: its lower bound, what a first job composes)."""
    from hydra.core.override_parser.types import IntervalSweep
    value = override.value()
    if isinstance(value, IntervalSweep):   # (Hydra reads its bounds as floats: 1.0 for an int key's 1)
        return [str(int(value.start)) if float(value.start).is_integer() else str(value.start)]
    return list(override.sweep_string_iterator())


def searched_geometry(job: list[str]) -> dict[str, list[str]]:
    """The GEOMETRY keys an Optuna search samples (hydra.sweeper.params) and their values (an interval: its
    bounds)."""
    from hydra.core.override_parser.types import IntervalSweep
    params = compose_config(job, with_hydra=True).hydra.sweeper.get("params") or {}
    parser, space = _parser(), {}
    for key, spec in params.items():
        if key in GEOMETRY:
            override = parser.parse_override(f"{key}={spec}")
            value = override.value()
            space[key] = [str(int(b)) if float(b).is_integer() else str(b) for b in (value.start, value.end)] \
                if isinstance(value, IntervalSweep) else list(override.sweep_string_iterator())
    return space


def first_job(argv: list[str]) -> list[str]:
    """A multirun's first job: each sweep's first value (an interval's lower bound), `--multirun` dropped."""
    parser, out = _parser(), []
    for word in argv:
        if word in ("--multirun", "-m"):
            continue
        if word.startswith("-") or "=" not in word:
            out.append(word)
            continue
        override = parser.parse_override(word)
        out.append(f"{override.get_key_element()}={sweep_values(override)[0]}" if override.is_sweep_override()
                   else word)
    return out


def jobs_to_compose(overrides: list[str]) -> list[list[str]]:
    """The jobs whose configs decide a budget: every value of a GEOMETRY key's sweep, the first of the others."""
    parser = _parser()
    choices: list[list[str]] = []
    for word in overrides:
        try:
            override = parser.parse_override(word)
        except Exception:   # composing it fails too; the command's own run says why
            choices.append([word])
            continue
        if not override.is_sweep_override():
            choices.append([word])
            continue
        values = sweep_values(override)
        key = override.get_key_element().lstrip("+~")
        choices.append([f"{override.get_key_element()}={v}" for v in (values if key in GEOMETRY else values[:1])])
    return [list(job) for job in itertools.islice(itertools.product(*choices), 16)]


def override_key(word: str) -> str | None:
    if word.startswith("-") or "=" not in word:
        return None
    return word.split("=", 1)[0].lstrip("+~")


def with_overrides(argv: list[str], forced: dict[str, str], defaults: dict[str, str] | None = None) -> list[str]:
    """`argv` with each `forced` key's value replaced where the command sets it (appended where it does not), and
    each `defaults` key appended where the command does not set it."""
    out, seen = [], set()
    for word in argv:
        key = override_key(word)
        if key in forced:
            prefix = word[:len(word) - len(word.lstrip("+"))]
            out.append(f"{prefix}{key}={forced[key]}")
            seen.add(key)
        else:
            out.append(word)
            seen.add(key)
    out += [f"{k}={v}" for k, v in forced.items() if k not in seen]
    out += [f"{k}={v}" for k, v in (defaults or {}).items() if k not in seen]
    return out


def trim_seeds(argv: list[str]) -> list[str]:
    """`seeds=[...]` cut to its first SEEDS_KEPT seeds; a `seed=` sweep to its first SEEDS_KEPT, or to its first
    seed where another key is swept too."""
    parser, out = _parser(), []
    others = any(override_key(w) not in (None, "seed") and _is_sweep(parser, w) for w in argv)
    for word in argv:
        key = override_key(word)
        if key == "seed" and _is_sweep(parser, word):
            values = sweep_values(parser.parse_override(word))
            word = f"seed={','.join(values[:1 if others else SEEDS_KEPT])}"
        elif key == "seeds":
            seeds = re.fullmatch(r"(\+*seeds=)\[([^\]]*)\]", word)
            if seeds and seeds[2].count(",") >= SEEDS_KEPT:
                word = f"{seeds[1]}[{','.join(seeds[2].split(',')[:SEEDS_KEPT])}]"
        out.append(word)
    return out


def _is_sweep(parser: Any, word: str) -> bool:
    try:
        return parser.parse_override(word).is_sweep_override()
    except Exception:
        return False


CONF = ROOT / "conf"
#: The algorithms that learn from rollouts (their budget depends on envs and rollout length: composed).
ON_POLICY = {p.stem for p in (CONF / "algo").glob("*.yaml") if re.search(r"(?m)^\s*n_steps:", p.read_text())}


def algorithms(argv: list[str]) -> set[str]:
    """The algorithms a command trains, read from its words: algo=, else an experiment's or a search's
    `override /algo`, else conf/config.yaml's default."""
    parser = _parser()
    for key, folder in (("algo", None), ("experiment", "experiment"), ("hparams_search", "hparams_search")):
        for word in argv:
            if override_key(word) != key:
                continue
            override = parser.parse_override(word)
            values = sweep_values(override) if override.is_sweep_override() else [str(override.value())]
            if folder is None:
                return set(values)
            found = {m[1] for v in values if (CONF / folder / f"{v}.yaml").exists()
                     for m in [re.search(r"override /algo: *(\w+)", (CONF / folder / f"{v}.yaml").read_text())] if m}
            if found:
                return found
    default = re.search(r"(?m)^\s*- algo: *(\w+)", (CONF / "config.yaml").read_text())
    return {default[1] if default else "dqn"}


def tiny_budget(argv: list[str]) -> list[str]:
    """`rlexp train <argv>` with a budget of seconds: the env steps (one rollout on-policy; 64 updates off-policy,
    a small replay), one short evaluation at the end, no periodic checkpoint, no held-out states; an Optuna
    search's trials (1, or its n_jobs) and seeds (two); a seed sweep's first two seeds. Each job of a sweep is
    composed (tests/conftest.py's Hydra) to read its algorithm, envs and rollout."""
    argv = trim_seeds(argv)
    text = " ".join(argv)
    search = bool(re.search(r"hparams_search=|hydra/sweeper=rlexp_optuna", text))
    overrides = [w for w in argv[1:] if not w.startswith("-")]
    jobs = jobs_to_compose(overrides)
    searched: dict[str, list[str]] = {}
    if search and algorithms(argv) & ON_POLICY:   # what a trial samples decides a budget too (PPO's largest n_steps)
        try:
            searched = searched_geometry(jobs[0])
        except Exception:
            pass
        for key, values in searched.items():
            jobs = [[*job, f"{key}={v}"] for job in jobs for v in values]
    configs = []
    try:
        composing = bool(algorithms(argv) & ON_POLICY)   # an off-policy budget needs nothing composed
    except Exception:
        composing = True
    for job in jobs if composing else []:
        try:
            configs.append(compose_config(job))
        except Exception:   # the command's own run says what is wrong, as a user sees it
            pass
    forced = dict(EVAL)
    defaults: dict[str, str] = {}
    algos = [c.algo for c in configs]
    if not composing or configs and all("learning_starts" in a for a in algos):
        steps = T_OFF
        forced.update({"algo.learning_starts": str(steps - UPDATES), "algo.buffer_size": "1000"})
    elif configs and all("n_steps" in a for a in algos):
        n_steps = [c.algo.n_steps for c in configs]
        # (not in a sweep over algorithms: `rlexp train --multirun algo=ppo,a2c algo.n_steps=16` is refused, the key
        # checked against the default algorithm's; there, a rollout of each)
        one_algo = len({c.algo.name for c in configs}) == 1
        if one_algo and "algo.n_steps" not in searched \
                and any(n * c.env.num_envs > ROLLOUT for n, c in zip(n_steps, configs)):
            needed = [c.algo.batch_size // math.gcd(c.algo.batch_size, c.env.num_envs)
                      for c in configs if "batch_size" in c.algo]   # PPO: batch_size must divide a rollout
            n = math.lcm(*needed) if needed else max(1, ROLLOUT // max(c.env.num_envs for c in configs))
            forced["algo.n_steps"] = str(n)
            n_steps = [n] * len(configs)
        steps = max(n * c.env.num_envs for n, c in zip(n_steps, configs))
    else:   # a family this test does not know yet, or a mix: the steps only
        steps = T_OFF
    forced.update({"total_steps": str(steps), "eval.every": str(steps)})
    if search:
        jobs = next((w.split("=", 1)[1] for w in argv if override_key(w) == "hydra.sweeper.n_jobs"), "1")
        forced["hydra.sweeper.n_trials"] = jobs
        defaults["hydra.sweeper.seeds"] = "[0,1]"
    if re.search(r"log\.backends=.*wandb", text):
        defaults["log.wandb.mode"] = "offline"   # nothing outside this machine
    return with_overrides(argv, forced, defaults)


# ---------------------------------------------------------------------------------------------------------------
# Running a documented command


def package_dir(doc: str, root: Path) -> Path | None:
    """The `# <path>.py` blocks of markdown file `doc` written under root/packages (with the packages'
    __init__.py), or None when it has none."""
    blocks = [s for s in all_docs()[1] if s.doc == doc and s.module_path]
    if not blocks:
        return None
    base = root / "packages"
    for snippet in blocks:
        path = base / snippet.module_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(snippet.code)
        for parent in path.relative_to(base).parents:
            if str(parent) != "." and not (base / parent / "__init__.py").exists():
                (base / parent / "__init__.py").write_text("")
    return base


def environment(command: Command, cwd: Path) -> dict[str, str] | None:
    """The command's environment where it is not the tests' usual one (its own words; PYTHONPATH for a package of
    its markdown file), else None."""
    extra = dict(command.env)
    if uses_package(command):
        packages = package_dir(command.doc, cwd)
        assert packages is not None
        extra["PYTHONPATH"] = os.pathsep.join([str(packages), *filter(None, [extra.get("PYTHONPATH")])])
    if not extra:
        return None
    env = cli_env()
    if "PYTHONPATH" in extra:
        extra["PYTHONPATH"] = os.pathsep.join([extra["PYTHONPATH"], env["PYTHONPATH"]])
    env.update(extra)
    return env


def prepare(command: Command, cwd: Path, fixtures: Fixtures) -> list[str]:
    """The arguments to run: placeholders replaced (the runs copied into cwd), globs expanded, the budget cut."""
    argv = [a for a in command.argv if a != ELISION]
    workspace = Workspace(cwd, fixtures, command)
    argv = expand_globs([workspace.resolve(a) for a in argv], cwd)
    if argv[:1] == ["train"] and not RUNS_ONLY & set(argv):
        if any(override_key(a) == "resume" for a in argv):
            if workspace.resumed_steps is not None:   # extend the copied run, so the resume trains
                argv = with_overrides(argv, {"total_steps": str(workspace.resumed_steps + 100)})
        else:
            argv = tiny_budget(argv)
    elif argv[:1] == ["eval"]:
        argv = with_overrides(argv, {"episodes": "2"}, {})
        if any(a == "embed=true" for a in argv):
            argv = with_overrides(argv, {"embed.states": "64"})
    elif argv[:1] == ["export"]:
        argv = with_overrides(argv, {"states": "64"})
    return argv


def run_command(argv: list[str], cwd: Path, env: dict[str, str] | None, timeout: float) -> subprocess.CompletedProcess:
    if env is None:
        return run_cli(argv, cwd=cwd, timeout=timeout)
    return subprocess.run([sys.executable, "-m", "rlexp", *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def failure(command: Command, argv: list[str], proc: subprocess.CompletedProcess) -> str:
    lines = [f"{command.where}: `{command.text}` exited {proc.returncode}",
             *(["  (also documented at " + ", ".join(command.also) + ")"] if command.also else []),
             f"  ran: rlexp {' '.join(shlex.quote(a) for a in argv)}",
             "  stderr: " + "\n          ".join(proc.stderr.strip().splitlines()[-15:]),
             "  stdout: " + "\n          ".join(proc.stdout.strip().splitlines()[-5:])]
    return "\n".join(lines)


#: The placeholders that stand for the Atari fixture (two DER runs, Pong and Breakout).
ATARI_RUNS = r"<atari sweep>|outputs/der_"


def trains(command: Command) -> bool:
    """A command that trains: `rlexp train` neither resuming a run nor only printing (--cfg, --help)."""
    return command.argv[:1] == ("train",) and not RUNS_ONLY & set(command.argv) \
        and not any(override_key(a) == "resume" for a in command.argv)


def param(command: Command) -> Any:
    """Every command that trains runs under `-m slow` (.ci/run runs them: about 3 minutes on 2 cores, more than the
    default suite can spend), and composes in the default suite (test_documented_command_composes); the others
    (eval, plot, export, resume, --cfg, --help) run in the default suite, against the shared runs, but those that
    need the Atari runs (two DER runs trained for them: `rlexp plot` tests the same normalisation in process)."""
    slow = trains(command) or (not command.long_running and re.search(r"(?i)\bcompile=true\b", command.text)) \
        or re.search(ATARI_RUNS, command.text)
    return pytest.param(command, id=command.where, marks=[pytest.mark.slow] if slow else [])


@pytest.fixture(scope="session")
def docs_fixtures(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    return Fixtures(tmp_path_factory)


@pytest.mark.parametrize("command", [pytest.param(c, id=c.where) for c in all_docs()[0] if trains(c)])
def test_documented_command_composes(command: Command, tmp_path: Path, docs_fixtures: Fixtures,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process, as `rlexp train` checks a command before it runs: its arguments (Hydra's flags, the
    optional groups' options, a new run directory), then its first job's config composed and validated (every key,
    type, option and range). A key or option renamed in the code fails here until the docs follow."""
    from rlexp.agents.registry import algorithms
    from rlexp.commands.arguments import checked_arguments
    from rlexp.commands.train import resolved_config
    from rlexp.config.validate import validate
    from rlexp.errors import ConfigError

    reason = skip_reason(" ".join(command.argv), runs=False)
    if reason:
        pytest.skip(f"{command.where}: {reason}")
    monkeypatch.chdir(tmp_path)
    workspace = Workspace(tmp_path, docs_fixtures, command)
    argv = [workspace.resolve(a) for a in command.argv[1:] if a != ELISION]
    try:
        args = checked_arguments(argv)
        overrides = [a for a in first_job(args) if "=" in a or a.startswith(("~", "+"))]
        validate(resolved_config(compose_config(overrides)), algorithms())
    except ConfigError as error:
        pytest.fail(f"{command.where}: `{command.text}` is refused: {error}")


@pytest.mark.parametrize("command", [param(c) for c in all_docs()[0] if not c.long_running])
def test_documented_command(command: Command, tmp_path: Path, docs_fixtures: Fixtures) -> None:
    text = " ".join(command.argv)
    reason = skip_reason(text, runs=True)
    if reason:
        pytest.skip(f"{command.where}: {reason}")
    argv = prepare(command, tmp_path, docs_fixtures)
    env = environment(command, tmp_path)
    timeout = 900 if "compile=true" in text.lower() else 300
    proc = run_cli(argv, cwd=tmp_path, timeout=timeout) if env is None else run_command(argv, tmp_path, env, timeout)
    assert proc.returncode == 0, failure(command, argv, proc)   # (run_cli: the tests' way to run a command as typed)


# ---------------------------------------------------------------------------------------------------------------
# Python blocks

def snippet_param(snippet: Snippet) -> Any:
    return pytest.param(snippet, id=f"{snippet.where}:python")


@pytest.mark.parametrize("snippet", [snippet_param(s) for s in all_docs()[1]])
def test_documented_python(snippet: Snippet, tmp_path: Path, docs_fixtures: Fixtures) -> None:
    if snippet.module_path:   # a module of the docs' package: written with its siblings, and imported
        base = package_dir(snippet.doc, tmp_path)
        name = snippet.module_path[:-3].replace("/", ".")
        top = name.split(".")[0]
        sys.path.insert(0, str(base))
        try:
            importlib.import_module(name)
        finally:
            sys.path.remove(str(base))
            for loaded in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
                del sys.modules[loaded]
        return
    reason = skip_reason(snippet.code, runs=True)
    if reason:
        pytest.skip(f"{snippet.where}: {reason}")
    workspace = Workspace(tmp_path, docs_fixtures, None)
    code = re.sub(r"(?P<q>[\"'])(?P<s>[^\"'\n]*)(?P=q)",
                  lambda m: m["q"] + workspace.resolve(m["s"]) + m["q"], snippet.code)
    (tmp_path / "snippet.py").write_text(code)
    env = cli_env()
    packages = package_dir(snippet.doc, tmp_path / "lib")
    if packages is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(packages), env["PYTHONPATH"]])
    proc = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, (f"{snippet.where}: the Python block exited {proc.returncode}\n"
                                  + "\n".join(proc.stderr.strip().splitlines()[-12:]))


# ---------------------------------------------------------------------------------------------------------------
# The collector itself

EXAMPLE = r"""
Some prose with `rlexp train algo=x` inline (not collected).

```bash
# a comment line
rlexp train algo=td3 env=Pendulum-v1                 # trains
rlexp train algo=dqn \
    'env.wrappers=[{_target_: a.B, s: "x # y"}]' seed=1   # a continued line; '#' inside quotes is kept
rlexp --help ; rlexp train --help                      # two commands
pip install -e . && rlexp eval <run_dir>/seed_3 episodes=2
rlexp train --multirun algo=ppo,a2c seed=0,1 hydra/launcher=ray   # on a cluster: long-running
python -m rlexp train ...
tensorboard --logdir outputs
rlexp train algo=td3 env=Pendulum-v1
PYTHONPATH=. rlexp eval <run or checkpoint.pt> tag=a#b > out.txt 2>&1
```

```console
$ rlexp plot outputs/multirun/2026-11-21_10-00-00
[12:00:00] plotted
$ mkdocs serve
```

```yaml
rlexp: not a command
```

```python
# my_package/envs.py
import gymnasium
```
"""


def test_collector_reads_lines_continuations_comments_and_markers() -> None:
    commands, snippets = collect(EXAMPLE, "x.md")
    got = [(c.where, c.argv, c.comment) for c in commands]
    assert got == [
        ("x.md:6", ("train", "algo=td3", "env=Pendulum-v1"), "trains"),
        ("x.md:7", ("train", "algo=dqn", 'env.wrappers=[{_target_: a.B, s: "x # y"}]', "seed=1"),
         "a continued line; '#' inside quotes is kept"),
        ("x.md:9.1", ("--help",), "two commands"),
        ("x.md:9.2", ("train", "--help"), "two commands"),
        ("x.md:10", ("eval", "<run_dir>/seed_3", "episodes=2"), ""),
        ("x.md:11", ("train", "--multirun", "algo=ppo,a2c", "seed=0,1", "hydra/launcher=ray"),
         "on a cluster: long-running"),
        ("x.md:14", ("train", "algo=td3", "env=Pendulum-v1"), ""),
        ("x.md:15", ("eval", "<run or checkpoint.pt>", "tag=a#b"), ""),
        ("x.md:19", ("plot", "outputs/multirun/2026-11-21_10-00-00"), ""),
    ]
    assert [c.long_running for c in commands] == [False] * 5 + [True] + [False] * 3
    assert commands[7].env == (("PYTHONPATH", "."),)
    assert all(c.seeds_block for c in commands[:8]) and not commands[8].seeds_block
    assert [(s.where, s.module_path) for s in snippets] == [("x.md:29", "my_package/envs.py")]
    deduped = dedupe(commands)
    assert len(deduped) == 8 and deduped[0].also == ("x.md:14",)


def test_placeholders_are_known_or_fail(tmp_path: Path) -> None:
    class Made(Fixtures):   # the placeholder table's choices, without training anything
        def get(self, name: str) -> tuple[Path, dict[str, Any]]:
            (tmp_path / "made" / name / "checkpoints").mkdir(parents=True, exist_ok=True)
            (tmp_path / "made" / name / "checkpoints" / "step_200.pt").write_text("")
            return tmp_path / "made" / name, {"total_steps": 400, "seeds": [0, 1],
                                              "runs": {"td3 Pendulum-v1": ".", "ddpg Pendulum-v1": ".",
                                                       "dqn CartPole-v1": "."}}

    seeds_block = Command("x.md:1", (), seeds_block=True)
    space = Workspace(tmp_path / "cwd", Made(None), seeds_block)   # type: ignore[arg-type]
    assert space.resolve("resume=<run_dir>/seed_3") == "resume=seeds_run/seed_1"
    assert space.resolve("<run_dir>") == "seeds_run" and space.resumed_steps == 400
    space = Workspace(tmp_path / "cwd", Made(None), Command("x.md:2", ()))   # type: ignore[arg-type]
    assert space.resolve("resume=<run_dir>") == "resume=run_dir"
    date = "outputs/td3_Pendulum-v1/2026-11-21_10-00-00"
    assert space.resolve(f"{date}/checkpoints/step_20000.pt") == f"{date}/checkpoints/step_200.pt"
    assert (tmp_path / "cwd" / date / "checkpoints").is_dir()
    assert space.resolve("outputs/multirun/<time>") == f"outputs/multirun/{A_DATE}"
    assert space.resolve("outputs/ddpg_Pendulum-v1") == "outputs/ddpg_Pendulum-v1"
    assert (tmp_path / "cwd" / "outputs" / "ddpg_Pendulum-v1" / A_DATE).is_dir()
    assert space.resolve("hydra.sweep.dir=outputs/search") == "hydra.sweep.dir=outputs/search"
    with pytest.raises(pytest.fail.Exception, match=r"x.md:2: unknown placeholder <my sweep>: add it to "
                                                    r"PLACEHOLDERS"):
        space.resolve("outputs/<my sweep>")


def test_budgets_and_first_jobs() -> None:
    assert first_job(["train", "--multirun", "algo=ddpg,td3", "seed=0,1,2", "algo.lr=tag(log, interval(1e-4, 1e-2))",
                      "hydra/launcher=joblib", "algo.n_steps=interval(16, 64)"]) == \
        ["train", "algo=ddpg", "seed=0", "algo.lr=0.0001", "hydra/launcher=joblib", "algo.n_steps=16"]
    assert with_overrides(["train", "total_steps=30000", "+a=1"], {"total_steps": "200", "a": "2"}, {"b": "3"}) == \
        ["train", "total_steps=200", "+a=2", "b=3"]
    ppo = tiny_budget(["train", "--multirun", "algo=ppo,a2c", "env=CartPole-v1", "seed=0,1,2,3,4"])
    assert "seed=0" in ppo and "total_steps=256" in ppo and not any("n_steps" in a for a in ppo), ppo
    lunar = tiny_budget(["train", "algo=ppo", "env=LunarLander-v3"])
    assert "algo.n_steps=4" in lunar and "total_steps=64" in lunar, lunar
    search = tiny_budget(["train", "--multirun", "hparams_search=td3_pendulum", "hydra.sweeper.n_jobs=2"])
    assert {"hydra.sweeper.n_trials=2", "hydra.sweeper.seeds=[0,1]", "total_steps=200",
            "algo.learning_starts=184"} <= set(search), search
    ppo_search = tiny_budget(["train", "--multirun", "hparams_search=ppo_cartpole"])   # n_steps up to 128, 16 envs
    assert "total_steps=2048" in ppo_search and not any("n_steps" in a for a in ppo_search), ppo_search
    assert algorithms(["train", "--multirun", "algo=ppo,a2c"]) == {"ppo", "a2c"} == ON_POLICY
    assert algorithms(["train", "experiment=der"]) == {"rainbow"} and algorithms(["train"]) == {"dqn"}
    assert trim_seeds(["train", "seed=0,1,2", "seeds=[0,1,2,3]"]) == ["train", "seed=0,1", "seeds=[0,1]"]
    assert trim_seeds(["train", "algo=ddpg,td3", "seed=0,1,2"]) == ["train", "algo=ddpg,td3", "seed=0"]


def test_the_docs_yield_commands() -> None:
    """The collector reads the docs as they are: README.md and docs/ together hold at least 20 commands (the
    README alone held about 60 before its sections moved to docs/)."""
    commands, snippets = all_docs()
    assert len(commands) >= 20, [c.where for c in commands]
    assert any(c.argv[:1] == ("train",) for c in commands) and snippets

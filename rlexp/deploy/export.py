"""`rlexp export`: a run's deterministic policy as one standalone file (TorchScript, torch.export or ONNX), verified
when written.

The file maps a batch of raw env observations (`obs`, in the env's dtype) to the actions the env takes (`action`):
observation normalization, the network, and the argmax or the clamp to the env's bounds are inside it
(rlexp/deploy/policy.py). Next to it, `<file>.json` names the input and output, their shapes and dtypes, the
action space and the preprocessing the observations must have had (Atari's). An agent of Dict or Tuple
observations is written with one input per entry (`obs.<entry path>`, each batched, in its stored dtype: Discrete
as int64, Box as float32, uint8 images as they are), listed under `inputs`.

Before a file is put in place it is loaded back (torch.jit.load, torch.export.load, or an onnxruntime session) and
run on the states of a few deterministic evaluation episodes; its actions must equal the agent's (discrete) or be
within `TOLERANCE` of them (continuous). A mismatch is an error and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlexp.config.actions import ActionKind
from rlexp.deploy.load import LoadedAgent
from rlexp.deploy.paths import FORMATS
from rlexp.envs.packing import Layout, unpack
from rlexp.envs.spaces import SpaceInfo
from rlexp.errors import ConfigError, RunFailure, needs_extra, one_line

TOLERANCE = 1e-5
INPUT, OUTPUT = "obs", "action"


class ExportMismatch(RunFailure):
    """The written file does not reproduce the agent's actions."""


@dataclass(frozen=True)
class ExportResult:
    file: Path
    spec_file: Path
    states: int
    max_abs_diff: float


def evaluation_states(loaded: LoadedAgent, count: int, seed: int) -> np.ndarray:
    """`count` raw observations met by the agent's deterministic episodes, from the run's evaluation seed on."""
    env = loaded.make_packed_env()
    states: list[np.ndarray] = []
    obs, _ = env.reset(seed=seed)
    while len(states) < count:
        states.append(np.array(obs))
        obs, _, terminated, truncated, _ = env.step(loaded.act_on_env(obs))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.stack(states)


def export_name(checkpoint: Path, fmt: str) -> str:
    """policy.<ext> for final.pt, policy_best.<ext> for best.pt, policy_<stem>.<ext> for any other file."""
    return ("policy" if checkpoint.stem == "final" else f"policy_{checkpoint.stem}") + FORMATS[fmt]


def _check_onnx() -> Any:
    with needs_extra("export", "format=onnx needs onnx, onnxscript and onnxruntime ($missing is not installed; "
                               "fix: $fix)"):
        import onnx  # noqa: F401  (torch's exporter writes with it)
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's dynamo-based exporter translates with it)
    return onnxruntime


def _write_torchscript(module: torch.nn.Module, example: Inputs, path: Path) -> Callable[[Inputs], np.ndarray]:
    # Tracing records the operations for this example; nothing in the policy branches on the batch size, and the
    # verification below runs the file on other batch sizes. TorchScript is deprecated in recent torch releases
    # (in favour of torch.export: format=pt2), yet it is what C++ (libtorch) and older runtimes load: the user
    # asked for it, so its deprecation warnings are not repeated at them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(module, (example,), check_trace=False)
        traced.save(str(path))
        reloaded = torch.jit.load(str(path), map_location="cpu")
    return lambda obs: reloaded(as_tensors(obs)).numpy()


#: What a policy file takes: a batch of observations, or (Dict and Tuple observations) a tuple of one batch per entry.
Inputs = Any


def as_tensors(inputs: Inputs) -> Any:
    return tuple(torch.as_tensor(x) for x in inputs) if isinstance(inputs, tuple) else torch.as_tensor(inputs)


def _exported_program(module: torch.nn.Module, example: Inputs) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch")
    shapes = tuple({0: batch} for _ in example) if isinstance(example, tuple) else {0: batch}
    return torch.export.export(module, (example,), dynamic_shapes={"obs": shapes})


def _write_pt2(module: torch.nn.Module, example: Inputs, path: Path) -> Callable[[Inputs], np.ndarray]:
    """torch.export's ExportedProgram (`torch.export.load(path).module()`): TorchScript's successor."""
    torch.export.save(_exported_program(module, example), str(path))
    reloaded = torch.export.load(str(path)).module()
    return lambda obs: reloaded(as_tensors(obs)).numpy()


def input_names(paths: Sequence[str] = ()) -> list[str]:
    """The inputs' names in an ONNX file: `obs`, or `obs.<entry path>` for each Dict/Tuple entry."""
    return [f"{INPUT}.{path}" for path in paths] if paths else [INPUT]


def policy_inputs(loaded: LoadedAgent, observations: np.ndarray) -> Inputs:
    """What the policy file takes for a batch of the env's observations: the batch, or for packed Dict/Tuple
    observations a tuple of one batch per entry (in the order of spaces.entries, each in its stored dtype)."""
    if not loaded.spaces.entries:
        return observations
    layout = Layout(loaded.spaces.entries, int(loaded.spaces.obs_shape[0]))
    return tuple(np.ascontiguousarray(values) for values in unpack(layout, observations).values())


def _write_onnx(module: torch.nn.Module, example: Inputs, path: Path) -> Callable[[Inputs], np.ndarray]:
    onnxruntime = _check_onnx()
    names = input_names(getattr(module, "paths", ()))
    # The exporter reports on stderr what it skips (torchvision's operators, which a policy never uses) and
    # warns about its own dependencies: nothing a user can act on.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_exported_program(module, example), (example,), str(path), input_names=names,
                              output_names=[OUTPUT], dynamo=True, external_data=False, verbose=False)
    finally:
        exporter_log.setLevel(level)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda obs: session.run([OUTPUT], dict(zip(names, obs if isinstance(obs, tuple) else (obs,))))[0]


WRITERS = {"torchscript": _write_torchscript, "pt2": _write_pt2, "onnx": _write_onnx}


#: What the file does after the policy network, by action space
ACTION_STEP = {ActionKind.DISCRETE: "argmax over the actions", ActionKind.CONTINUOUS: "clamp to the action bounds",
               ActionKind.MULTI_DISCRETE: "argmax over each component's choices",
               ActionKind.MULTI_BINARY: "each bit 1 where its logit is positive"}


def exact(spaces: SpaceInfo) -> bool:
    """Integer actions (Discrete, MultiDiscrete, MultiBinary), which an export must reproduce exactly."""
    return not spaces.continuous


def _describe(loaded: LoadedAgent, fmt: str, file: Path, states: int, diff: float, obs_dtype: np.dtype,
              action_dtype: np.dtype) -> dict[str, Any]:
    from rlexp import __version__

    spaces, env = loaded.spaces, loaded.config["env"]
    kind = spaces.action_kind
    assert kind is not None   # an agent was built for it (check_fits)
    action_space: dict[str, Any]
    if spaces.discrete:
        action_space = {"type": "Discrete", "n": spaces.n_actions}
    elif spaces.action_nvec is not None:
        action_space = {"type": "MultiDiscrete", "nvec": list(spaces.action_nvec)}
    elif spaces.action_bits is not None:
        action_space = {"type": "MultiBinary", "n": spaces.action_bits}
    else:
        assert spaces.action_low is not None and spaces.action_high is not None   # a Box action space
        action_space = {"type": "Box", "shape": list(spaces.action_shape), "low": spaces.action_low.tolist(),
                        "high": spaces.action_high.tolist()}
    normalized = loaded.normalization is not None and loaded.normalization.settings.obs
    return {
        "format": fmt, "file": file.name, "algo": loaded.algo, "env_id": loaded.env_id, "env_kwargs": env["kwargs"],
        "checkpoint": str(loaded.checkpoint.resolve()), "step": loaded.step, "rlexp_version": __version__,
        **({"inputs": [{"name": name, "entry": entry.path, "shape": ["batch", *entry.shape],
                        "dtype": str(entry.dtype)} for name, entry in
                       zip(input_names([e.path for e in spaces.entries]), spaces.entries)]} if spaces.entries else
           {"input": {"name": INPUT, "shape": ["batch", *spaces.obs_shape], "dtype": str(obs_dtype)}}),
        "output": {"name": OUTPUT, "shape": ["batch", *spaces.action_shape], "dtype": str(action_dtype)},
        "action_space": action_space,
        "inside": [*(["observation normalization with the run's training statistics (clip "
                      f"{loaded.normalization.settings.clip_obs})"]
                     if normalized and loaded.normalization is not None else []),
                   f"the {loaded.algo} policy network",
                   ACTION_STEP[kind]],
        # What the observations must have been through before they reach the file (the env's own wrappers).
        "observation_preprocessing": {"atari": env["atari"]} if env.get("atari") else None,
        "verified": {"states": states, "max_abs_diff": diff, "tolerance": 0.0 if exact(spaces) else TOLERANCE},
    }


def export(loaded: LoadedAgent, fmt: str, out_dir: Path, states: int = 2048, seed: int | None = None) \
        -> ExportResult:
    """Write `out_dir/<policy name>` in `fmt` and its JSON description, after checking the file against the agent
    on `states` evaluation states (default seed: the run's evaluation seed)."""
    from rlexp.config.validate import EVAL_SEED_OFFSET

    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt} must be {' or '.join(FORMATS)}")
    if fmt == "onnx":
        _check_onnx()
    observations = evaluation_states(loaded, states, loaded.config["seed"] + EVAL_SEED_OFFSET if seed is None
                                     else seed)
    expected = loaded.act(observations)
    module = loaded.policy_module()
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"out={out_dir} is a file; give a directory for the export")
    created = not out_dir.exists()
    file = out_dir / export_name(loaded.checkpoint, fmt)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        # (the temp file keeps the format's suffix: torch.export.save insists on .pt2)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{file.name}.", suffix=f".tmp{FORMATS[fmt]}", dir=out_dir)
    except OSError as error:
        raise ConfigError(f"cannot write the export into {out_dir}: {error.strerror or error}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    written = False
    try:
        # (torch reports what it could not capture with its whole graph, in warnings and on stderr: the line below
        # says it)
        disabled = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                run = WRITERS[fmt](module, as_tensors(policy_inputs(loaded, observations[:2])), tmp)
        except (OSError, ConfigError, RunFailure):
            raise
        except Exception as error:   # tracing or exporting failed: the user's torso, or a fault of ours
            torso = (loaded.config["network"].get("torso") or {}).get("_target_")
            if torso is None:
                raise
            raise ConfigError(f"the policy cannot be exported as {fmt}: its network.torso ({torso}) could not be "
                              f"captured ({type(error).__name__}: {one_line(str(error))[:200]}); try another "
                              f"format ({', '.join(f for f in FORMATS if f != fmt)}), or make the module "
                              f"traceable; nothing was written") from None
        finally:
            logging.disable(disabled)
        # The whole set as one batch, and one observation alone: the batch axis really is free.
        got = run(policy_inputs(loaded, observations))
        single = run(policy_inputs(loaded, observations[:1]))
        if got.shape != expected.shape or single.shape != expected[:1].shape:
            raise ExportMismatch(f"the exported {fmt} policy returns actions of shape {got.shape} for "
                                 f"{len(observations)} observations, the agent {expected.shape}; nothing was written")
        diff = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)), initial=0.0))
        diff = max(diff, float(np.max(np.abs(single.astype(np.float64) - expected[:1].astype(np.float64)))))
        allowed = 0.0 if exact(loaded.spaces) else TOLERANCE
        if diff > allowed:
            raise ExportMismatch(f"the exported {fmt} policy does not reproduce the agent's actions on "
                                 f"{len(observations)} evaluation states (max |difference| {diff:.3g} > {allowed:g}); "
                                 f"nothing was written")
        spec = _describe(loaded, fmt, file, len(observations), diff, observations.dtype, got.dtype)
        if fmt == "onnx":
            import onnx

            spec["opset"] = int(next(o.version for o in onnx.load(str(tmp)).opset_import
                                     if o.domain in ("", "ai.onnx")))
        spec_file = file.with_name(file.name + ".json")
        spec_tmp = spec_file.with_name(f".{spec_file.name}.tmp")
        spec_tmp.write_text(json.dumps(spec, indent=2) + "\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp's 0600 is for secrets; an export is meant to be shared
        os.replace(tmp, file)
        os.replace(spec_tmp, spec_file)
        written = True
    except OSError as error:   # a full disk, a quota, a directory that turned read-only
        raise RunFailure(f"could not write the export into {out_dir}: {error.strerror or error}; nothing was "
                         f"written") from None
    finally:
        tmp.unlink(missing_ok=True)
        file.with_name(f".{file.name}.json.tmp").unlink(missing_ok=True)
        if created and not written:   # a failed export leaves the run as it was
            shutil.rmtree(out_dir, ignore_errors=True)
    return ExportResult(file=file, spec_file=spec_file, states=len(observations), max_abs_diff=diff)

"""`rlexp export <run_dir or checkpoint.pt> format=onnx|torchscript|pt2 [checkpoint=final|best] [out=DIR]`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rlexp.commands import options
from rlexp.commands.subcommand import run_subcommand
from rlexp.errors import ConfigError, Interrupted
from rlexp.io.writable import check_writable

EXPORT_USAGE = """usage: rlexp export <run_dir or checkpoint.pt> format=onnx|torchscript|pt2 [checkpoint=final|best]
                    [out=DIR] [states=N]

Writes the run's deterministic policy as one standalone file: <run_dir>/export/policy.onnx, policy.pt
(TorchScript) or policy.pt2 (torch.export), policy_best.* for checkpoint=best, with <file>.json naming its input
("obs": a batch of raw observations in the env's dtype) and output ("action": the actions the env takes).
Observation normalization, the network, and the argmax or the clamp to the action bounds are inside the file.
Before it is put in place, the file is loaded back (torch.jit.load, torch.export.load, onnxruntime) and must
reproduce the agent's actions on N states of its evaluation episodes (default 2048): equal for discrete actions,
within 1e-5 for continuous ones. format=onnx needs pip install "rlexp[export]".
"""


@dataclass(frozen=True)
class ExportOptions:
    path: Path
    format: str
    checkpoint: str | None = None   # final or best of a run directory (None: final)
    out: Path | None = None
    states: int = 2048


def parse_export_args(args: list[str]) -> ExportOptions:
    from rlexp.deploy.paths import FORMATS

    paths, values = options.parse(args, {
        "format": options.one_of(*FORMATS), "checkpoint": options.one_of("final", "best"),
        "out": options.text("exports/td3"), "states": options.positive_int}, "export")
    path = options.one_path(paths, "export")
    if "format" not in values:
        raise ConfigError(f"say which format: format={' or format='.join(FORMATS)} (rlexp export --help)")
    if "out" in values:
        values["out"] = Path(values["out"])
    return ExportOptions(path=path, **values)


def export_and_report(args: list[str], warn: Callable[[str], None]) -> str:
    """Export, verified; the one line naming the file."""
    opts = parse_export_args(args)
    from rlexp.deploy.paths import checkpoint_path

    checkpoints = checkpoint_path(opts.path, opts.checkpoint).parent   # a wrong path is refused before torch loads
    run_dir = checkpoints.parent if checkpoints.name == "checkpoints" else checkpoints
    out_dir = opts.out or run_dir / "export"
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"out={out_dir} is a file; give a directory for the export")
    check_writable(out_dir, "the export")   # before the agent is loaded and checked
    from rlexp.deploy.export import export
    from rlexp.deploy.load import load
    from rlexp.runners.memory import check_host_memory

    loaded = load(opts.path, opts.checkpoint, device="cpu")
    check_host_memory("states", opts.states, opts.states * (8.0 * loaded.spaces.obs_dim + 64),
                      "the verification states")
    try:
        result = export(loaded, opts.format, out_dir, states=opts.states)
    except Interrupted as stop:   # (export writes beside and renames: its temp files are removed as this passes)
        raise stop.during("; no export was left half-written") from None
    return (f"{loaded.algo} on {loaded.env_id} (step {loaded.step}) -> {result.file} ({opts.format}); its actions "
            f"match the agent's on {result.states} evaluation states (max |difference| {result.max_abs_diff:.2g}); "
            f"input and output: {result.spec_file}")


def main(args: list[str]) -> int:
    """`rlexp export ...`: one line naming the file on stdout; every error one line on stderr, exit 2 or 1."""
    return run_subcommand("export", EXPORT_USAGE, args, export_and_report)

"""results.json: a run's outcome, written atomically so a reader never sees half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_results(path: Path, results: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)


def results_status(run_dir: Path) -> str | None:
    """The `status` of the run's results.json (completed, failed, interrupted), None before it has one."""
    results = run_dir / "results.json"
    try:
        return json.loads(results.read_text()).get("status") if results.is_file() else None
    except (OSError, ValueError):
        return None

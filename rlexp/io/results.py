"""results.json: a run's outcome, written atomically so a reader never sees half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rlexp.errors import RunFailure


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Written beside and renamed over: the file is the old one or the new one, never part of one; a failed write
    (a full disk, a file-size limit, a directory gone) leaves no temp file and is a RunFailure naming the file."""
    tmp = path.with_suffix(".json.tmp")
    try:
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as error:
        raise RunFailure(f"could not write {path}: {error.strerror or error}") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:   # (its directory gone)
            pass


def read_results(run_dir: Path) -> dict[str, Any] | None:
    """The run's results.json, None when it has none, or one that is not a JSON object (damaged, or edited by hand:
    a reader never fails on it; the run's next outcome writes it again)."""
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) else None


def results_status(run_dir: Path) -> str | None:
    """The `status` of the run's results.json (completed, failed, interrupted), None before it has one."""
    status = (read_results(run_dir) or {}).get("status")
    return status if isinstance(status, str) else None

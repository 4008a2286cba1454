"""Reading a W&B offline run (`<dir>/wandb/offline-run-*/run-<id>.wandb`) as the tests check it: the file is W&B's
transaction log (a 7-byte header, then LevelDB's log format: 32 KiB blocks of records, each a 7-byte header, CRC,
length and type, and a piece of one protobuf `Record`), which wandb itself no longer reads from Python."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:8]
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:   # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == FULL:
            whole = chunk
        elif kind == FIRST:
            pending = chunk
            continue
        elif kind == MIDDLE:
            pending += chunk
            continue
        elif kind == LAST:
            whole, pending = pending + chunk, b""
        else:   # (zeroed padding)
            continue
        record = wandb_internal_pb2.Record()
        record.ParseFromString(whole)
        yield record


def offline_run(run_dir: Path) -> dict[str, Any]:
    """The offline run of an rlexp run directory: its id, project, group and name, its config, and its history as
    {tag: [(step, value), ...]}."""
    [path] = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    run: dict[str, Any] = {"history": {}, "config": {}, "files": path.parent / "files"}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(id=record.run.run_id, project=record.run.project, group=record.run.run_group,
                       name=record.run.display_name)
            run["config"].update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "history":
            step = record.history.step.num
            for item in record.history.item:
                tag = item.key or "/".join(item.nested_key)
                if not tag.startswith("_"):
                    run["history"].setdefault(tag, []).append((step, json.loads(item.value_json)))
    return run

"""The records of an offline W&B run, read back from its ``run-*.wandb`` log.

The log is LevelDB's log format (a ``:W&B`` header, 32 KiB blocks of CRC-checked records) holding
``wandb_internal_pb2.Record`` protobufs; :func:`wandb_records` reads it with wandb's own protobuf classes.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = struct.Struct("<4sHB")  # ident ":W&B", magic 0xBEE1, version 0
CHUNK = struct.Struct("<IHB")  # CRC-32 (zlib) of the type byte and the data, data length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(root: Path) -> list[Any]:
    """Every record of the one offline W&B run under ``root/wandb`` (the run must be finished); a CLI fit's run
    folder (``run_dir``) holds its ``wandb/``."""
    (log,) = root.glob("wandb/offline-run-*/run-*.wandb")
    data = log.read_bytes()
    assert HEADER.unpack_from(data) == (b":W&B", 0xBEE1, 0), "not a W&B transaction log"
    records, pending, pos = [], b"", HEADER.size
    while pos + CHUNK.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK.size:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        crc, length, kind = CHUNK.unpack_from(data, pos)
        if kind == 0:  # zero padding up to the end of the block
            pos += left
            continue
        payload = data[pos + CHUNK.size : pos + CHUNK.size + length]
        assert zlib.crc32(bytes([kind]) + payload) == crc, f"corrupt chunk at byte {pos} of {log}"
        pos += CHUNK.size + length
        pending = payload if kind in (FULL, FIRST) else pending + payload
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def of_type(records: list[Any], kind: str) -> list[Any]:
    """The payloads of the records of one kind (``artifact``, ``config``, ``exit`` ...)."""
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]

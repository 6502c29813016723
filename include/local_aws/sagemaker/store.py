"""Persistent resource records: one JSON file per resource, written atomically.

Records are plain JSON-able dicts whose timestamps are epoch seconds (floats), which is
also how the JSON protocol carries them, so a record goes on the wire as it is stored.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Record = dict[str, Any]


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._data: dict[str, dict[str, Record]] = {}
        self._load()

    def _load(self) -> None:
        for kind_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            records = self._data.setdefault(kind_dir.name, {})
            for path in sorted(kind_dir.glob("*.json")):
                with path.open() as fh:
                    record = json.load(fh)
                records[record["__key"]] = record

    def _path(self, kind: str, key: str) -> Path:
        # Keys may hold characters a file name can't (ARNs with '/', ':'): hex-encode them.
        return self.root / kind / f"{key.encode().hex()}.json"

    def _write(self, kind: str, key: str, record: Record) -> None:
        path = self._path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{threading.get_ident()}")
        with tmp.open("w") as fh:
            json.dump(record, fh, default=str)
        os.replace(tmp, path)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def create(self, kind: str, key: str, record: Record) -> Record:
        with self._lock:
            record = dict(record, __key=key)
            self._data.setdefault(kind, {})[key] = record
            self._write(kind, key, record)
            return copy.deepcopy(record)

    def exists(self, kind: str, key: str) -> bool:
        with self._lock:
            return key in self._data.get(kind, {})

    def get(self, kind: str, key: str) -> Record | None:
        with self._lock:
            record = self._data.get(kind, {}).get(key)
            return copy.deepcopy(record) if record is not None else None

    def update(self, kind: str, key: str, change: Callable[[Record], None] | Record) -> Record:
        """Apply ``change`` (a function mutating the record, or a dict to merge) and persist."""
        with self._lock:
            record = self._data[kind][key]
            if callable(change):
                change(record)
            else:
                record.update(change)
            self._write(kind, key, record)
            return copy.deepcopy(record)

    def delete(self, kind: str, key: str) -> Record | None:
        with self._lock:
            record = self._data.get(kind, {}).pop(key, None)
            path = self._path(kind, key)
            if path.exists():
                path.unlink()
            return record

    def values(self, kind: str) -> Iterator[Record]:
        with self._lock:
            records = [copy.deepcopy(r) for r in self._data.get(kind, {}).values()]
        return iter(records)

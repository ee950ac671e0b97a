"""The run's own records: `history.csv` (one row per log step) and `val.csv` (one per validation).

Their rows are part of the resume state (each checkpoint carries a copy), so a resumed run rebuilds
them from the checkpoint, never from the files in the run folder, which an orchestrator may have
deleted before re-running the stage, or which may hold rows of a killed run past the checkpoint.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ramit.io import atomic_open

HISTORY_FIELDS = ["iter", "epoch", "loss", "lr", "it_s"]
VAL_FIELDS = ["iter", "epoch", "psnr"]


def parse_rows(text: str, upto: int) -> list[dict]:
    """Rows of a CSV we wrote, up to iteration `upto`."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            if int(row["iter"]) <= upto:
                rows.append(row)
        except (KeyError, TypeError, ValueError):  # a line cut short by a kill
            continue
    return rows


def read_rows(path: Path, upto: int) -> list[dict]:
    return parse_rows(path.read_text(encoding="utf-8"), upto) if path.is_file() else []


class CsvLog:
    """Append-only CSV that starts from the given rows; appends are flushed line by line."""

    def __init__(self, path: Path, fields: list[str], rows: list[dict]):
        self.path, self.fields = path, fields
        self.rows = [{k: str(r[k]) for k in fields} for r in rows]
        with atomic_open(path, "w", newline="") as fh:
            fh.write(self.text())

    def append(self, row: dict) -> None:
        row = {k: row[k] for k in self.fields}
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.fields).writerow(row)
        self.rows.append({k: str(v) for k, v in row.items()})

    def text(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, self.fields)
        w.writeheader()
        w.writerows(self.rows)
        return buf.getvalue()

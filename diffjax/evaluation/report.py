"""Results as JSON and as a README-ready markdown table.

    print(markdown_table([{"setting": "heun", "nfe": 35, **results}]))
"""
from __future__ import annotations

import json
import math
import os
import re
from typing import Optional, Sequence

# (key, header) in display order; only columns some row has are shown.
COLUMNS = (
        ("setting", "setting"),
        ("sampler", "sampler"),
        ("nfe", "NFE"),
        ("num", "N"),
        ("fd_classifier", "FD clf ↓"),
        ("kad_classifier", "KAD clf ↓"),
        ("kid_classifier", "KID clf ↓"),
        ("is", "IS ↑"),
        ("mis", "mIS ↑"),
        ("accuracy", "class acc ↑"),
        ("ndb_k_classifier", "NDB/K clf ↓"),
        ("fd_mel", "FD mel ↓"),
        ("kad_mel", "KAD mel ↓"),
        ("kid_mel", "KID mel ↓"),
        ("fd_mfcc", "FD mfcc ↓"),
        ("kad_mfcc", "KAD mfcc ↓"),
        ("kid_mfcc", "KID mfcc ↓"),
        ("nonfinite", "NaN"),
)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, int, str)):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.2e}"


def _cell(row: dict, key: str) -> str:
    """`row[key]` formatted, with its interval '[low, high]' where the row has one."""
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    text = _fmt(row.get(key))
    return text if low is None or high is None else f"{text} [{_fmt(low)}, {_fmt(high)}]"


def markdown_table(rows: Sequence[dict], columns: Optional[Sequence[tuple[str, str]]] = None
                   ) -> str:
    """A GitHub markdown table of `rows` over `columns` ((key, header) pairs; default `COLUMNS`
    restricted to keys present, plus other scalar 'fd_'/'kad_'/'kid_' keys of custom embedders).
    A value with `<key>_low` and `<key>_high` in its row (a bootstrap interval) shows them too."""
    if columns is None:
        present = {k for row in rows for k in row}
        columns = [c for c in COLUMNS if c[0] in present]
        known = {c[0] for c in COLUMNS}
        extra = sorted(k for k in present if k not in known and re.match(r"(fd|kad|kid)_[^_]+$", k)
                       and not k.startswith(("fd_classifier", "kad_classifier", "kid_classifier")))
        columns += [(k, k.replace("_", " ", 1)) for k in extra]
    lines = ["| " + " | ".join(h for _, h in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(row, k) for k, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_results(out_dir: str, results: dict, *, row: Optional[dict] = None) -> None:
    """`results.json` and `results.md` (a one-row table) in `out_dir`, written atomically."""
    os.makedirs(out_dir, exist_ok=True)
    for name, text in (("results.json", json.dumps(results, indent=2, sort_keys=True)),
                       ("results.md", markdown_table([{**results, **(row or {})}]) + "\n")):
        path = os.path.join(out_dir, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


def replace_between(path: str, start: str, end: str, text: str) -> None:
    """Replaces what lies between the marker lines `start` and `end` in `path` (appends both
    markers if absent)."""
    doc = open(path).read() if os.path.exists(path) else ""
    block = f"{start}\n{text}\n{end}"
    if start in doc and end in doc:
        doc = doc[:doc.index(start)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + ("\n\n" if doc else "") + block + "\n"
    with open(path, "w") as f:
        f.write(doc)

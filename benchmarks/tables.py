"""Shared by the benchmark scripts: refresh a marked block of a markdown file.

A block is delimited by `<!-- NAME -->` and `<!-- /NAME -->` lines; the text between them is replaced
(the markers are appended at the end of the file if absent).
"""
from __future__ import annotations

import os
import platform

import jax


def replace_block(path: str, name: str, body: str) -> None:
    """Writes `body` between the `<!-- name -->` markers of `path`."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def machine() -> str:
    """The machine a benchmark ran on, for its table's header: CPU, cores, jax version, backend."""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} {jax.default_backend()}"

"""The one guard on every file a job writes (issue 20): never an input, never an existing file
unless the user passed --overwrite. Argument values are used as given, never rewritten.

    out = guarded_path(args.out, inputs=[args.input], overwrite=args.overwrite)
    io.write_audio(out, x, sample_rate=sr, overwrite=args.overwrite)
"""
from __future__ import annotations

import os
from typing import Iterable, Optional


def same_file(a: str, b: str) -> bool:
    """Whether paths `a` and `b` name one file (after links; hard links too when both exist)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def guarded_path(path: str, *, inputs: Iterable[Optional[str]] = (), overwrite: bool = False) -> str:
    """`path`, once it is known not to be an input and not to exist (unless `overwrite`).

    Raises:
      ValueError: `path` is one of `inputs` (even with `overwrite`: an input is never replaced).
      FileExistsError: `path` exists and `overwrite` is False.
    """
    for source in inputs:
        if source is not None and same_file(path, source):
            raise ValueError(f"{path} is the input file {source}; choose another output path "
                             "(an input is never overwritten, even with --overwrite)")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    return path


def guard_all(paths: Iterable[str], *, inputs: Iterable[Optional[str]] = (), overwrite: bool = False) -> list[str]:
    """`guarded_path` on every path a job will write, before it starts the work; two outputs that
    are one file are refused too."""
    inputs, paths = list(inputs), list(paths)
    for i, path in enumerate(paths):
        guarded_path(path, inputs=inputs + paths[:i], overwrite=overwrite)
    return paths

"""A listening page (issue 21): `index.html` in a job's output folder, one audio player and one
spectrogram per clip, the metrics table and the command that made it.

The page is plain static HTML with inline CSS: no script, no network resource, only links relative
to the folder, so it works offline and can be zipped or copied with the folder.

    pngs = write_clip_spectrograms(out, [("seed000000.wav", audio[0]), ...], sample_rate)
    write_listening_page(out, [PageClip("seed 0", "seed000000.wav", pngs[0])], title="samples",
                         metrics=[{"setting": "nfe", "value": 20}], command=command_line())
"""
from __future__ import annotations

import html
import json
import os
import shlex
import sys
import urllib.parse
from typing import Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np

from diffjax.audio import io
from diffjax.audio.plots import Clip, write_spectrograms
from diffjax.jobs import files

PAGE_NAME = "index.html"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.1em; margin: 0 0 .4em; }
pre { background: #f4f4f4; padding: .6em; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
section.clip { border-top: 1px solid #ddd; padding: 1em 0; }
section.clip audio { width: 100%; max-width: 600px; display: block; margin: .3em 0; }
section.clip img { max-width: 100%; height: auto; display: block; }
p.caption { margin: .2em 0; color: #555; }
"""


class PageClip(NamedTuple):
    """One clip of a listening page; paths are relative to the page's folder."""

    name: str
    audio: str                       # e.g. "seed000000.wav"
    spectrogram: Optional[str] = None  # e.g. "seed000000.png"
    caption: str = ""
    metrics: Optional[Mapping[str, object]] = None  # shown under the clip, e.g. {"si_sdr": 12.3}


def command_line(argv: Optional[Sequence[str]] = None) -> str:
    """The command as a shell would read it back (default: this process's `sys.argv`)."""
    return shlex.join(["python"] + list(sys.argv if argv is None else argv))


def _format(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    if isinstance(value, (str, int, np.integer)):
        return str(value)
    return json.dumps(value, default=str)


def _table(rows: Sequence[Mapping[str, object]], css_class: str) -> str:
    """An HTML table of row dicts; the columns are every key, in order of first appearance."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_format(row.get(c)))}</td>" for c in columns) + "</tr>"
                   for row in rows)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _link(out_dir: str, path: str, what: str) -> str:
    """`path` as a URL relative to the page, once it is known to be a file inside `out_dir`."""
    if "://" in path or path.startswith("//") or os.path.isabs(path):
        raise ValueError(f"{what} {path!r} must be a path relative to the page's folder {out_dir} "
                         "(the page works offline, from the folder alone)")
    root = os.path.realpath(out_dir)
    full = os.path.realpath(os.path.join(out_dir, path))
    if os.path.commonpath([root, full]) != root:
        raise ValueError(f"{what} {path!r} is outside the page's folder {out_dir}; copy it into the folder first")
    if not os.path.isfile(full):
        raise FileNotFoundError(f"{what} {path!r} does not exist in {out_dir}; write it before the page")
    return urllib.parse.quote(path.replace(os.sep, "/"))


def _clip_html(out_dir: str, clip: PageClip) -> str:
    parts = [f'<section class="clip"><h2>{html.escape(clip.name)}</h2>']
    if clip.caption:
        parts.append(f'<p class="caption">{html.escape(clip.caption)}</p>')
    parts.append(f'<audio controls preload="metadata" src="{_link(out_dir, clip.audio, "audio")}"></audio>')
    if clip.spectrogram is not None:
        parts.append(f'<img src="{_link(out_dir, clip.spectrogram, "spectrogram")}" '
                     f'alt="{html.escape("spectrogram of " + clip.name)}">')
    if clip.metrics:
        parts.append(_table([{"metric": k, "value": v} for k, v in clip.metrics.items()], "clip-metrics"))
    parts.append("</section>")
    return "\n".join(parts)


def render_page(out_dir: str, clips: Sequence[Union[PageClip, tuple]], *, title: str,
                metrics: Optional[Sequence[Mapping[str, object]]] = None,
                command: Optional[str] = None) -> str:
    """The page's HTML; every linked file must already exist under `out_dir`."""
    clips = [PageClip(*clip) for clip in clips]
    body = [f"<h1>{html.escape(title)}</h1>"]
    if command:
        body.append(f'<p>Made by:</p>\n<pre class="command"><code>{html.escape(command)}</code></pre>')
    if metrics:
        body.append(_table(list(metrics), "metrics"))
    body.extend(_clip_html(out_dir, clip) for clip in clips)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def write_listening_page(out_dir: str, clips: Sequence[Union[PageClip, tuple]], *, title: str,
                         metrics: Optional[Sequence[Mapping[str, object]]] = None,
                         command: Optional[str] = None, overwrite: bool = False) -> str:
    """Writes `out_dir/index.html` and returns its path.

    Args:
      out_dir: the folder holding the clips; the page links to them relatively.
      clips: `PageClip`s or tuples `(name, audio, spectrogram=None, caption="", metrics=None)`,
        paths relative to `out_dir`.
      title: the page's heading.
      metrics: row dicts, drawn as one table (columns: every key, in order of first appearance).
      command: the command line that produced the folder (`command_line()`).
      overwrite: replace an existing page (else FileExistsError).
    """
    path = files.guarded_path(os.path.join(out_dir, PAGE_NAME), overwrite=overwrite)
    text = render_page(out_dir, clips, title=title, metrics=metrics, command=command)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def spectrogram_name(audio_path: str) -> str:
    """The PNG beside an audio file: `a/b.wav` -> `a/b.png`."""
    return os.path.splitext(audio_path)[0] + ".png"


def write_clip_spectrograms(out_dir: str, clips: Sequence[tuple[str, np.ndarray]], sample_rate: int, *,
                            references: Optional[Sequence[Optional[Clip]]] = None,
                            overwrite: bool = False) -> list[str]:
    """One spectrogram PNG beside each audio file (`spectrogram_name`), with its reference beside it.

    Args:
      out_dir: the page's folder.
      clips: `(audio path relative to out_dir, audio [L, C])`; the PNG shows that audio.
      sample_rate: the clips' rate (and the references').
      references: per clip, an optional `(label, audio [L, C])`, e.g. `("clean", x)`.
      overwrite: replace existing PNGs (else FileExistsError before any is written).
    Returns:
      The PNG paths, relative to `out_dir`.
    """
    names = [spectrogram_name(rel) for rel, _ in clips]
    files.guard_all([os.path.join(out_dir, n) for n in names], overwrite=overwrite)
    references = references or [None] * len(clips)
    for name, (rel, audio), ref in zip(names, clips, references):
        label = os.path.splitext(os.path.basename(rel))[0]
        write_spectrograms(os.path.join(out_dir, name), [(label, audio)], sample_rate, reference=ref,
                           panel_size=(8.0, 2.4))  # one clip: wide enough to read
    return names


def write_example_clips(out_dir: str, named_audio: Sequence[tuple[str, np.ndarray]], sample_rate: int, *,
                        subdir: str = "clips", overwrite: bool = False) -> list[PageClip]:
    """Writes each `(name, audio [L, C])` as `out_dir/subdir/<name>.wav` with its spectrogram PNG,
    every path checked before any is written; returns the page's clips (evaluation's examples)."""
    rels = [os.path.join(subdir, f"{name}.wav") for name, _ in named_audio]
    files.guard_all([os.path.join(out_dir, r) for r in rels]
                    + [os.path.join(out_dir, spectrogram_name(r)) for r in rels], overwrite=overwrite)
    os.makedirs(os.path.join(out_dir, subdir), exist_ok=True)
    for rel, (_, audio) in zip(rels, named_audio):
        io.write_audio(os.path.join(out_dir, rel), np.clip(np.asarray(audio, np.float32), -1, 1),
                       sample_rate=sample_rate, overwrite=overwrite)
    pngs = write_clip_spectrograms(out_dir, list(zip(rels, (a for _, a in named_audio))), sample_rate,
                                   overwrite=overwrite)
    return [PageClip(name, rel, png) for (name, _), rel, png in zip(named_audio, rels, pngs)]


def metric_rows(results: Mapping[str, object]) -> list[dict]:
    """A results dict's scalar entries as `{"metric", "value"}` rows (nested and list values left out)."""
    return [{"metric": k, "value": v} for k, v in results.items()
            if isinstance(v, (int, float, str, np.floating, np.integer)) and not isinstance(v, bool)]

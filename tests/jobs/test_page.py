"""The listening page: its structure (stdlib html.parser), its guards, and (slow) that headless
Chromium renders it and loads every player."""
import dataclasses
import html
import html.parser
import json
import os
import re
import shutil
import subprocess
from urllib.parse import unquote

import numpy as np
import pytest

from diffjax.audio import io as audio_io
from diffjax.jobs.page import PageClip, command_line, write_clip_spectrograms, write_listening_page
from diffjax.jobs.sample import SampleRequest, run_sample_request

RATE = 16000


class _Outline(html.parser.HTMLParser):
    """Collects the tags, attributes and text a check needs."""

    def __init__(self):
        super().__init__()
        self.tags, self.text, self.cells, self._cell = [], [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def find(self, tag):
        return [attrs for t, attrs in self.tags if t == tag]


def _folder(tmp_path, names=("seed000000.wav", "my clip & 1.wav")):
    """A folder of tiny WAVs (0.1 s tones) with their spectrogram PNGs; returns the page's clips."""
    out = tmp_path / "out"
    out.mkdir()
    t = np.arange(int(0.1 * RATE)) / RATE
    waves = [np.stack([np.sin(2 * np.pi * 440 * (i + 1) * t)] * 2, axis=1) * 0.5 for i in range(len(names))]
    for name, wave in zip(names, waves):
        audio_io.write_audio(str(out / name), wave, sample_rate=RATE)
    pngs = write_clip_spectrograms(str(out), list(zip(names, waves)), RATE)
    return out, [PageClip(f"clip {i}", name, png, caption=f"tone {i}", metrics={"lsd": 0.5 * i})
                 for i, (name, png) in enumerate(zip(names, pngs))], waves


def test_page_has_one_player_and_one_picture_per_clip_and_links_only_inside_the_folder(tmp_path):
    out, clips, _ = _folder(tmp_path)
    command = 'python experiments/sample.py --prompt "<b>loud</b> & soft"'
    rows = [{"method": "dps", "si_sdr": 12.345678, "lsd": 0.8}, {"method": "pigdm", "si_sdr": 10.0, "lsd": None}]
    page = write_listening_page(str(out), clips, title="Restorations <test>", metrics=rows, command=command)
    assert page == str(out / "index.html")
    text = open(page, encoding="utf-8").read()
    outline = _Outline()
    outline.feed(text)
    audios, images = outline.find("audio"), outline.find("img")
    assert len(audios) == len(images) == len(clips)
    for attrs, clip in zip(audios, clips):
        assert "controls" in attrs and attrs["preload"] == "metadata"
    for attrs in audios + images:
        assert os.path.isfile(out / unquote(attrs["src"]))  # relative to the page, and present
    assert unquote(audios[1]["src"]) == "my clip & 1.wav" and "%20" in audios[1]["src"]
    # the metrics table: a header and one row per dict, floats to 4 significant figures
    assert ["method", "si_sdr", "lsd", "dps", "12.35", "0.8", "pigdm", "10", ""] == outline.cells[:9]
    assert outline.cells[9:13] == ["metric", "value", "lsd", "0"]  # clip 0's own metrics
    # the command and title appear as text, escaped in the source
    assert command in "".join(outline.text) and "<b>loud</b>" not in text and "&lt;b&gt;loud" in text
    assert "Restorations <test>" in "".join(outline.text)
    # offline: no script, no absolute path, no URL
    assert not outline.find("script") and not outline.find("link")
    assert not re.search(r"(?:src|href)=\"(?:https?:|file:|/)", text) and str(tmp_path) not in text


def test_page_is_never_overwritten_unless_asked(tmp_path):
    out, clips, waves = _folder(tmp_path, names=("a.wav",))
    write_listening_page(str(out), clips, title="first")
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_listening_page(str(out), clips, title="second")
    assert "first" in (out / "index.html").read_text()
    write_listening_page(str(out), clips, title="second", overwrite=True)
    assert "second" in (out / "index.html").read_text()
    with pytest.raises(FileExistsError, match="a.png exists"):
        write_clip_spectrograms(str(out), [("a.wav", waves[0])], RATE)


def test_page_refuses_links_outside_the_folder_or_missing_files(tmp_path):
    out, clips, _ = _folder(tmp_path, names=("a.wav",))
    for bad, match in [("/etc/passwd", "relative"), ("https://example.com/a.wav", "relative"),
                       ("../a.wav", "outside"), ("missing.wav", "does not exist")]:
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            write_listening_page(str(out), [PageClip("x", bad)], title="t")
    assert not (out / "index.html").exists()


def test_command_line_quotes_arguments_for_a_shell():
    assert command_line(["experiments/sample.py", "--prompt", "a soft flute"]) == \
        "python experiments/sample.py --prompt 'a soft flute'"


_PROBE = """<script>
window.addEventListener('load', () => {
  const players = [...document.querySelectorAll('audio')];
  const images = [...document.querySelectorAll('img')];
  const report = () => {
    const p = document.createElement('pre');
    p.id = 'probe';
    p.textContent = JSON.stringify({
      audio: players.map(a => [a.readyState, a.duration, a.error ? a.error.code : null]),
      images: images.map(i => [i.complete, i.naturalWidth])});
    document.body.appendChild(p);
  };
  Promise.all(players.map(a => a.readyState >= 1 ? 0 : new Promise(r => {
    a.addEventListener('loadedmetadata', r); a.addEventListener('error', r); })))
    .then(report);
});
</script>"""


@pytest.mark.slow
def test_chromium_renders_the_page_and_loads_every_player(tmp_path):
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    assert chromium is not None, "this slow test needs Debian's headless Chromium: apt-get install chromium"
    out, clips, waves = _folder(tmp_path)
    page = write_listening_page(str(out), clips, title="t", command="python x.py")
    # A copy of the page with a probe script; the shipped page stays script-free.
    probe = out / "probe.html"
    probe.write_text(open(page, encoding="utf-8").read().replace("</body>", _PROBE + "</body>"))
    result = subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox", "--allow-file-access-from-files",
                             "--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=10000",
                             "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert found, f"no probe output; chromium said:\n{result.stderr[-2000:]}"
    report = json.loads(html.unescape(found.group(1)))
    assert len(report["audio"]) == len(clips) and len(report["images"]) == len(clips)
    for (ready, duration, error), wave in zip(report["audio"], waves):
        assert error is None and ready >= 1  # HAVE_METADATA: the file was found and decoded
        assert duration == pytest.approx(len(wave) / RATE, abs=1e-3)
    for complete, width in report["images"]:
        assert complete and width > 0


def test_the_sample_job_writes_a_page_and_refuses_to_replace_it(smoke_audio_workdir, tmp_path):
    out = tmp_path / "samples"
    request = SampleRequest(workdir=str(smoke_audio_workdir), sampler="euler", nfe=2, num=2, seed=3, out=str(out),
                            command="python experiments/sample.py --num 2 --out 'a b'")
    summary = run_sample_request(request)
    outline = _Outline()
    outline.feed((out / "index.html").read_text())
    assert [a["src"] for a in outline.find("audio")] == ["seed000003.wav", "seed000004.wav"]
    assert [a["src"] for a in outline.find("img")] == ["seed000003.png", "seed000004.png"]
    assert request.command in "".join(outline.text)
    settings = dict(zip(outline.cells[2::2], outline.cells[3::2]))  # after the header: setting, value
    assert settings["sampler"] == "euler" and settings["nfe"] == str(summary["nfe"]) and settings["seeds"] == "[3, 4]"
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_sample_request(request)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # refused before writing
    run_sample_request(dataclasses.replace(request, overwrite=True))
    assert (out / "index.html").stat().st_mtime_ns > before["index.html"]

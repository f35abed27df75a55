"""Audio datasets, registered in `diffjax.data.DATASETS`: 'synth_music' and 'folder'.

Both implement `diffjax.data.AbstractDataset`, with one call deterministic in its arguments:

    ds = get_dataset("synth_music", sample_rate=16000, clip_seconds=1.0, cache_dir=workdir)
    batch = ds.batch(step, batch_size, seed=0, process_index=0, process_count=1)
    batch["x"]       # float32 [b, L, C] in [-1, 1], b = batch_size // process_count
    batch["mask"]    # float32 [b, L, 1]: 1 on real audio, 0 on padding of short clips
    batch["index"]   # int32 [b]: which clip (for debugging and tests)
    batch["label"]   # int32 [b] (+ other label fields), where the dataset has labels
    batch["seconds_start"]  # float32 [b]: where the example starts in its clip or file, seconds
    batch["seconds_total"]  # float32 [b]: seconds of real audio in the example (= mask.sum / sr)
    batch["caption"]  # object [b] of str: synth_music always; folder with `metadata` ("": none)
    batch["events"]   # float32 [b, E, 4] (pitch, onset_s, duration_s, velocity) re-timed to the
                      # example, padding rows pitch -1: synth_music, where its data has events
    ds.eval          # the evaluation split, same interface
    ds.example_shape == (ds.length, ds.channels); ds.sample_rate, ds.num_classes, ds.class_names,
    len(ds); ds.closed_form is None (no known density)

Every parameter is a constructor argument (a config key) and is checked at construction; an empty
train or eval split is an error there that names the key to change.

Sampling. The global batch of `step` is positions [step * B, (step + 1) * B) of an endless
stream; position p is clip `perm_e[p mod N]` of epoch e = p // N, with `perm_e` a permutation
seeded by (seed, e), so each epoch sees every clip once. Host `process_index` takes the
contiguous slice [i * b, (i + 1) * b) of the global batch: hosts are disjoint, and the global batch
does not depend on the process count. Random crops (and `min_seconds` lengths) are seeded by
(seed, step, position), and captions (a template, or one of a file's captions) by the same with
another tag, so captions vary across epochs. Nothing depends on previous calls, so a resumed run
sees exactly the same data. Captions and timing come from `diffjax.audio.captions` and
`diffjax.audio.metadata`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os

import numpy as np

from diffjax.audio import captions, io, metadata, synth
from diffjax.data import DATASETS, AbstractDataset, host_share

logger = logging.getLogger("diffjax")


# ---------------------------------------------------------------------------------------------
# Shared sampling logic
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, 0x5EED])).permutation(n)


def host_positions(step: int, batch_size: int, process_index: int,
                   process_count: int) -> np.ndarray:
    """Stream positions [b] of this host's share of the global batch of `step`."""
    b = host_share(batch_size, process_index, process_count)
    return step * batch_size + process_index * b + np.arange(b, dtype=np.int64)


def clip_indices(positions: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Maps stream positions to clip indices: epoch-wise permutations of range(n)."""
    return np.asarray([_epoch_permutation(seed, int(p // n), n)[p % n] for p in positions],
                      np.int64)


def crop_rng(seed: int, step: int, position: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, step, int(position), 0xC409]))


def split_of(relpath: str, eval_fraction: float) -> str:
    """'eval' or 'train', fixed by a hash of the relative path (stable across machines)."""
    h = int(hashlib.sha1(relpath.replace(os.sep, "/").encode()).hexdigest()[:8], 16)
    return "eval" if h / 2 ** 32 < eval_fraction else "train"


def _strings(values) -> np.ndarray:
    """An object array [b] of Python str (the layout of `batch["caption"]`)."""
    values = list(values)
    out = np.empty(len(values), object)
    out[:] = values
    return out


def _pad(x: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pads or truncates x [l, C] to [length, C]; mask [length, 1] marks the real part."""
    m = np.zeros((length, 1), np.float32)
    m[:min(len(x), length)] = 1.0
    out = np.zeros((length, x.shape[1]), np.float32)
    out[:min(len(x), length)] = x[:length]
    return out, m


# ---------------------------------------------------------------------------------------------
# Embedded synthesised music
# ---------------------------------------------------------------------------------------------

def _check_common(name: str, split: str, channels, sample_rate, crop_seconds) -> None:
    """Checks the keys every audio dataset takes; errors name the config key."""
    if split not in ("train", "eval"):
        raise ValueError(f"{name}: split must be 'train' or 'eval'; got {split!r}")
    if channels not in (1, 2):
        raise ValueError(f"{name}: data.channels must be 1 or 2; got {channels!r}")
    if not sample_rate or sample_rate <= 0:
        raise ValueError(f"{name}: data.sample_rate must be > 0 (Hz, explicit); got {sample_rate!r}")
    if crop_seconds is not None and crop_seconds <= 0:
        raise ValueError(f"{name}: data.crop_seconds must be > 0 (or None); got {crop_seconds!r}")


@DATASETS.register("synth_music")
@dataclasses.dataclass(frozen=True)
class SynthMusic(AbstractDataset):
    """The embedded default dataset (`diffjax.audio.synth`): notes, chords, arpeggios, drums.

    Labels: 'label' (instrument, `class_names`), 'pitch' (MIDI), 'kind', 'quality', 'velocity';
    'caption' is one of the clip's caption templates (`diffjax.audio.captions`), drawn per example.
    Clips 0..num_train-1 are the train split and the next num_eval the eval split. With
    `min_seconds`, each example keeps its first u ~ Uniform[min_seconds, crop] seconds with a
    10 ms fade-out, then zeros (mask 0; seconds_total = u rounded to a sample).
    """

    sample_rate: int = 16000
    clip_seconds: float = 1.0     # length of the rendered clips
    crop_seconds: float | None = None  # random crops of this length; None = whole clips
    num_train: int = 512          # renders in ~2 s on one CPU core
    num_eval: int = 64
    seed: int = 0                 # the synthesis seed (the sampling seed is batch(seed=...))
    channels: int = 1             # 1, or 2 (the mono clip on both channels)
    cache_dir: str | None = None  # default $XDG_CACHE_HOME/diffjax
    split: str = "train"
    instruments: tuple[str, ...] | None = None  # a subset of synth.INSTRUMENTS; None: all 9
    min_seconds: float | None = None  # variable-length examples of >= this many seconds; None: full

    def __post_init__(self):
        _check_common("synth_music", self.split, self.channels, self.sample_rate, self.crop_seconds)
        for key in ("num_train", "num_eval"):
            if getattr(self, key) < 1:
                split = key.removeprefix("num_")
                raise ValueError(f"synth_music: {key} = {getattr(self, key)} leaves the {split} split "
                                 f"empty; set data.synth_music.{key} >= 1")
        if self.clip_seconds <= 0:
            raise ValueError(f"synth_music: data.synth_music.clip_seconds must be > 0; got "
                             f"{self.clip_seconds}")
        if self.crop_seconds is not None and self.crop_seconds > self.clip_seconds:
            raise ValueError(f"synth_music: data.crop_seconds = {self.crop_seconds} is longer than the "
                             f"clips (data.synth_music.clip_seconds = {self.clip_seconds})")
        crop = self.crop_seconds or self.clip_seconds
        if self.min_seconds is not None and not 0 < self.min_seconds <= crop:
            raise ValueError(f"synth_music: data.synth_music.min_seconds must be in (0, {crop}] (the "
                             f"crop or clip length in seconds) or None; got {self.min_seconds}")
        if self.instruments is not None:  # a list from a JSON-restored config becomes a tuple
            object.__setattr__(self, "instruments", synth.check_instruments(self.instruments))

    @functools.cached_property
    def _data(self) -> dict[str, np.ndarray]:
        data = synth.synth_music(self.num_train + self.num_eval, sample_rate=self.sample_rate,
                                 clip_seconds=self.clip_seconds, seed=self.seed,
                                 cache_dir=self.cache_dir, instruments=self.instruments)
        sl = slice(0, self.num_train) if self.split == "train" else slice(self.num_train, None)
        return {k: v[sl] for k, v in data.items()}

    @property
    def length(self) -> int:
        return int(round((self.crop_seconds or self.clip_seconds) * self.sample_rate))

    @property
    def example_shape(self) -> tuple[int, int]:
        return (self.length, self.channels)

    num_classes = len(synth.INSTRUMENTS)
    class_names = synth.INSTRUMENTS
    closed_form = None

    def __len__(self) -> int:
        return self.num_train if self.split == "train" else self.num_eval

    @functools.cached_property
    def eval(self) -> "SynthMusic":
        return dataclasses.replace(self, split="eval")

    def batch(self, step: int, batch_size: int, *, seed: int, process_index: int = 0,
              process_count: int = 1) -> dict[str, np.ndarray]:
        """This host's share of the global batch of `step` (see the module docstring)."""
        pos = host_positions(step, batch_size, process_index, process_count)
        idx = clip_indices(pos, len(self), seed)
        sr, full, length = self.sample_rate, self._data["audio"].shape[1], self.length
        rngs = [crop_rng(seed, step, p) for p in pos]
        starts = [int(r.integers(full - length + 1)) if length < full else 0 for r in rngs]
        audio = np.stack([self._data["audio"][i, s:s + length, None] for i, s in zip(idx, starts)])
        mask = np.ones(audio.shape, np.float32)
        kept = [length] * len(pos)
        if self.min_seconds is not None:  # Drawn after the start, so crops are as without it.
            crop = self.crop_seconds or self.clip_seconds
            kept = [min(length, max(1, round(r.uniform(self.min_seconds, crop) * sr))) for r in rngs]
            for j, n in enumerate(kept):
                audio[j], mask[j] = metadata.truncate(audio[j], mask[j], n, round(0.01 * sr))
        out = {"x": np.repeat(audio, self.channels, axis=2).astype(np.float32), "mask": mask,
               "index": idx.astype(np.int32),
               "seconds_start": np.asarray(starts, np.float32) / np.float32(sr),
               "seconds_total": np.asarray(kept, np.float32) / np.float32(sr)}
        labels = {k: self._data[k][idx] for k in ("label", "pitch", "kind", "quality", "velocity")}
        out.update(labels)
        templates = [metadata.caption_rng(seed, step, p).integers(captions.num_templates(kind))
                     for p, kind in zip(pos, labels["kind"])]
        out["caption"] = _strings(captions.caption({k: v[j] for k, v in labels.items()}, t)
                                  for j, t in enumerate(templates))
        if "events" in self._data:
            out["events"] = metadata.crop_events(self._data["events"][idx], out["seconds_start"],
                                                 out["seconds_total"])
        return out

    def caption_corpus(self) -> list[str]:
        """Every caption template of every clip of this split (`captions.caption_corpus`), clip-major:
        the text a tokenizer's vocabulary is trained on."""
        return captions.caption_corpus(self._data)


# ---------------------------------------------------------------------------------------------
# A folder of audio files
# ---------------------------------------------------------------------------------------------

def _scan_file(path: str) -> dict:
    """Manifest entry of one file; raises io.AudioError (with the reason) if it is unusable."""
    info = io.audio_info(path)
    x = io.read_audio(path, sample_rate=info.sample_rate, channels=None)  # NaN/inf check.
    return {"duration": info.duration, "sample_rate": info.sample_rate,
            "channels": info.channels, "frames": info.frames, "rms_db": io.rms_db(x),
            "peak": float(np.max(np.abs(x)))}


def build_manifest(root: str, cache_dir: str | None = None, *, follow_symlinks: bool = False) -> dict:
    """Scans `root` recursively and caches the manifest as JSON in `cache_dir` (None: the same
    default as the synthesised data, `$XDG_CACHE_HOME/diffjax`, else `~/.cache/diffjax`).

    Entries are keyed by relative path, with (size, mtime) to detect changed files; only new or
    changed files are re-read on later calls. Unusable files are listed under 'skipped' with the
    reason, and each is warned about (logger 'diffjax'). Symbolic links (files or folders) are
    skipped unless `follow_symlinks`, so nothing outside `root` is read by default.
    """
    root = os.path.abspath(root)
    cache_dir = cache_dir or synth.default_cache_dir()
    if not os.path.isdir(root):
        raise FileNotFoundError(f"audio folder {root} does not exist")
    tag = hashlib.sha1(root.encode()).hexdigest()[:12]
    path = os.path.join(cache_dir, f"manifest_{tag}.json")
    old = {}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
    files, skipped = {}, {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.lower().endswith(io.AUDIO_EXTENSIONS):
                continue
            full = os.path.join(dirpath, name)
            if os.path.islink(full) and not follow_symlinks:
                logger.warning("skipping %s: a symbolic link (set data.folder.follow_symlinks=True to read it)", full)
                continue
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            st = os.stat(full)
            stamp = [st.st_size, st.st_mtime_ns]
            prev_ok, prev_bad = old.get("files", {}).get(rel), old.get("skipped", {}).get(rel)
            if prev_ok and prev_ok["stamp"] == stamp:
                files[rel] = prev_ok
                continue
            if prev_bad and prev_bad["stamp"] == stamp:
                skipped[rel] = prev_bad
            else:
                try:
                    files[rel] = {**_scan_file(full), "stamp": stamp}
                    continue
                except io.AudioError as e:
                    skipped[rel] = {"reason": str(e).removeprefix(f"{full}: "), "stamp": stamp}
            logger.warning("skipping %s: %s", full, skipped[rel]["reason"])
    manifest = {"root": root, "files": files, "skipped": skipped}
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, path)
    return manifest


@DATASETS.register("folder")
@dataclasses.dataclass(frozen=True)
class AudioFolder(AbstractDataset):
    """Random fixed-length crops from the wav/flac/ogg files under `root` (recursively).

    Files are resampled to `sample_rate` (logged), down-mixed or kept stereo, and optionally
    peak-normalised. Clips shorter than a crop are zero-padded and masked. With `silence_db`,
    files whose RMS is below it are skipped, and crops below it are redrawn (up to 8 times).
    With `labels_from_dirs`, the label is the top-level sub-folder's index in `class_names`.
    With `metadata` (a CSV or JSON-lines file of `path,caption` rows, `metadata.read_metadata`),
    batches carry 'caption' (one of the file's captions, drawn per example; "" for files without
    a row). Batches always carry 'seconds_start' (the crop's offset in its file) and
    'seconds_total' (seconds of real audio in the crop, min(crop, rest of the file)).

    Construction scans the folder (the manifest is cached) and checks that both splits are
    non-empty, so a bad `root` or `eval_fraction` fails at once, not at the first batch.
    """

    root: str | None = None       # the audio directory (required; a config placeholder is None)
    cache_dir: str | None = None  # manifest JSON cache (e.g. the workdir); None: ~/.cache/diffjax
    sample_rate: int = 16000
    crop_seconds: float = 1.0
    channels: int = 1             # 1 = mono down-mix, 2 = stereo
    normalize: bool = False       # peak-normalise each file
    silence_db: float | None = None  # e.g. -50: skip silent files, redraw silent crops
    eval_fraction: float = 0.05   # files hashed into the eval split, in (0, 1)
    labels_from_dirs: bool = False
    follow_symlinks: bool = False  # read files and folders linked from inside root (may lead outside it)
    metadata: str | None = None   # captions: a CSV / JSON-lines file of path,caption; relative to root
    split: str = "train"

    def __post_init__(self):
        _check_common("folder", self.split, self.channels, self.sample_rate, self.crop_seconds)
        if not self.root:
            raise ValueError("folder: set data.folder.root to the audio directory")
        if self.crop_seconds is None:
            raise ValueError("folder: data.crop_seconds must be set (the length of a training crop)")
        if not 0 < self.eval_fraction < 1:
            raise ValueError(f"folder: data.folder.eval_fraction must be in (0, 1); got "
                             f"{self.eval_fraction}")
        self._check_splits()
        if self.metadata is not None:
            _ = self._captions  # Reads it now: a bad file fails at construction, not at a batch.

    def _check_splits(self) -> None:
        """Both splits non-empty (the manifest is scanned once and cached on this object)."""
        usable = sorted(self._manifest["files"])
        sizes = {s: sum(split_of(r, self.eval_fraction) == s for r in usable) for s in ("train", "eval")}
        for split, size in sizes.items():
            if not size:
                change = "raise" if split == "eval" else "lower"
                raise ValueError(f"folder: the {split} split of {self.root} is empty ({len(usable)} "
                                 f"usable files, data.folder.eval_fraction = {self.eval_fraction}); "
                                 f"{change} data.folder.eval_fraction or add files")

    @functools.cached_property
    def _manifest(self) -> dict:
        m = build_manifest(self.root, self.cache_dir, follow_symlinks=self.follow_symlinks)
        found = len(m["files"]) + len(m["skipped"])
        usable = {r: e for r, e in m["files"].items()
                  if self.silence_db is None or e["rms_db"] >= self.silence_db}
        silent = len(m["files"]) - len(usable)
        log = logger.warning if m["skipped"] or silent else logger.info
        log("audio folder %s: %d files, %d usable, %d skipped as unreadable/corrupt, "
                    "%d skipped as silent", m["root"], found, len(usable), len(m["skipped"]),
                    silent)
        if not usable:
            reasons = "; ".join(f"{r}: {e['reason']}" for r, e in list(m["skipped"].items())[:5])
            raise ValueError(f"no usable audio in {m['root']}: {found} audio files found, "
                             f"{len(m['skipped'])} unreadable, {silent} silent. {reasons}")
        return {"root": m["root"], "files": usable, "skipped": m["skipped"]}

    @functools.cached_property
    def _captions(self) -> dict[str, tuple[str, ...]]:
        """{relative path: captions} from `metadata`, for files in the manifest (both splits)."""
        root = self._manifest["root"]
        rows = metadata.read_metadata(os.path.join(root, self.metadata), root)
        unknown = sorted(set(rows) - set(self._manifest["files"]))
        if unknown:
            shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            logger.warning("metadata %s: %d row(s) name files that are not usable audio under %s "
                           "(missing, unreadable or silent), ignored: %s", self.metadata,
                           len(unknown), root, shown)
        return {r: c for r, c in rows.items() if r in self._manifest["files"]}

    def caption_corpus(self) -> list[str]:
        """Every caption of this split's files, in file order: a tokenizer's training text."""
        if self.metadata is None:
            raise ValueError("folder: caption_corpus needs captions; set data.folder.metadata to a "
                             "CSV or JSON-lines file of path,caption rows")
        return [c for r in self.files for c in self._captions.get(r, ())]

    @functools.cached_property
    def class_names(self) -> tuple[str, ...]:
        if not self.labels_from_dirs:
            return ()
        return tuple(sorted({r.split("/")[0] for r in self._manifest["files"] if "/" in r}))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @functools.cached_property
    def files(self) -> tuple[str, ...]:
        """Relative paths of this split's files, sorted (non-empty: checked at construction)."""
        return tuple(r for r in sorted(self._manifest["files"])
                     if split_of(r, self.eval_fraction) == self.split)

    @property
    def num_skipped(self) -> int:
        return len(self._manifest["skipped"])

    @property
    def length(self) -> int:
        return int(round(self.crop_seconds * self.sample_rate))

    @property
    def example_shape(self) -> tuple[int, int]:
        return (self.length, self.channels)

    closed_form = None

    def __len__(self) -> int:
        return len(self.files)

    @functools.cached_property
    def eval(self) -> "AudioFolder":
        return dataclasses.replace(self, split="eval")

    def _crop(self, rel: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
        """A random crop [L, C], its mask [L, 1] and start (seconds) of file `rel`, at `sample_rate`."""
        e = self._manifest["files"][rel]
        path = os.path.join(self._manifest["root"], rel)
        ratio = e["sample_rate"] / self.sample_rate
        src_len = int(math.ceil(self.length * ratio))
        margin = int(math.ceil(32 * ratio))  # Source samples beyond the crop, for the filter.
        for _ in range(8 if self.silence_db is not None else 1):
            start = int(rng.integers(max(1, e["frames"] - src_len + 1)))
            lo = max(0, start - margin)
            x = io.read_audio(path, sample_rate=self.sample_rate, channels=self.channels,
                              normalize=False, start=lo, frames=src_len + start - lo + margin)
            skip = int(round((start - lo) / ratio))
            x, m = _pad(x[skip:], self.length)
            if self.silence_db is None or io.rms_db(x[m[:, 0] > 0]) >= self.silence_db:
                break
        if self.normalize and e["peak"] > 0:  # The file's peak, so crops keep their level.
            x = x * (0.95 / e["peak"])
        return np.clip(x, -1.0, 1.0), m, start / e["sample_rate"]

    def batch(self, step: int, batch_size: int, *, seed: int, process_index: int = 0,
              process_count: int = 1) -> dict[str, np.ndarray]:
        """This host's share of the global batch of `step` (see the module docstring)."""
        pos = host_positions(step, batch_size, process_index, process_count)
        idx = clip_indices(pos, len(self), seed)
        crops = [self._crop(self.files[i], crop_rng(seed, step, p)) for i, p in zip(idx, pos)]
        out = {"x": np.stack([c[0] for c in crops]), "mask": np.stack([c[1] for c in crops]),
               "index": idx.astype(np.int32),
               "seconds_start": np.asarray([c[2] for c in crops], np.float32)}
        out["seconds_total"] = out["mask"].sum(axis=(1, 2)) / np.float32(self.sample_rate)
        if self.metadata is not None:
            found = [self._captions.get(self.files[i], ("",)) for i in idx]
            out["caption"] = _strings(c[metadata.caption_rng(seed, step, p).integers(len(c))]
                                      for c, p in zip(found, pos))
        if self.labels_from_dirs:
            names = self.class_names
            out["label"] = np.asarray([names.index(self.files[i].split("/")[0])
                                       if "/" in self.files[i] else -1 for i in idx], np.int32)
        return out

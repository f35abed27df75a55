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
stream. In synth_music, position p is clip `perm_e[p mod N]` of epoch e = p // N, with `perm_e` a
permutation seeded by (seed, e), so each epoch sees every clip once; in a folder, position p draws
its crop with probability proportional to duration (`AudioFolder.draw`). Host `process_index` takes the
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
import logging
import math
import os

import numpy as np

from diffjax.audio import cache, captions, io, metadata, scan, synth
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


# A folder of audio files
# ---------------------------------------------------------------------------------------------

def _kept(entry: dict) -> int:
    return sum(e - s for s, e in entry["segments"])


@DATASETS.register("folder")
@dataclasses.dataclass(frozen=True)
class AudioFolder(AbstractDataset):
    """Random fixed-length crops from the wav/flac/ogg/mp3 files under `root` (recursively).

    With `cache` (the default), each file is decoded once at `sample_rate` and `channels` (and
    peak-normalised with `normalize`) into a memory-mapped cache (`diffjax.audio.cache`), and
    crops slice it; without, each crop is read from the file (slow to seek in compressed formats).
    With `silence_db`, silent stretches of at least `silence_min_seconds` are dropped (files that
    are all silence with them), and crops come only from the kept segments.

    Crops are weighted by duration: example position p draws a frame uniformly from all kept audio
    of the split (its file and segment are the ones that hold it) with `crop_rng(seed, step, p)`,
    then a crop start uniformly inside that segment, so a file's share of crops is its share of
    the audio. A segment shorter than a crop gives its whole length, zero-padded and masked.
    The eval split is about `eval_fraction` of the duration (`split_by_duration`); a folder of one
    file is split in time (its last `eval_fraction` is eval). The split and any channel conversion
    are logged. 'index' is the file's index in `files`.

    With `labels_from_dirs`, the label is the top-level sub-folder's index in `class_names`.
    With `metadata` (a CSV or JSON-lines file of `path,caption` rows, `metadata.read_metadata`),
    batches carry 'caption' (one of the file's captions, drawn per example; "" for files without
    a row). Batches always carry 'seconds_start' (the crop's offset in its file) and
    'seconds_total' (seconds of real audio in the crop).

    Construction scans (and decodes) the folder, so a bad `root` fails at once, not at a batch.
    """

    root: str | None = None       # the audio directory (required; a config placeholder is None)
    cache_dir: str | None = None  # manifest and decode cache (e.g. the workdir); None: ~/.cache/diffjax
    sample_rate: int = 16000
    crop_seconds: float = 1.0
    channels: int = 1             # 1 = mono down-mix, 2 = stereo
    normalize: bool = False       # peak-normalise each file (to 0.95)
    silence_db: float | None = None  # e.g. -60: drop stretches whose 50 ms RMS is below it (dBFS)
    silence_min_seconds: float = 1.0  # only silences at least this long are dropped
    eval_fraction: float = 0.05   # share of the total duration in the eval split, in (0, 1)
    cache: bool = True            # decode once into <cache_dir>/audio/<hash>; False: seek the files
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
        if self.silence_min_seconds <= 0:
            raise ValueError(f"folder: data.folder.silence_min_seconds must be > 0; got "
                             f"{self.silence_min_seconds}")
        if self.silence_db is not None and not self.cache:
            raise ValueError("folder: data.folder.silence_db needs the decode cache (silence is found "
                             "when files are decoded); set data.folder.cache=True or silence_db=None")
        for split in ("train", "eval"):
            if not self._split[split][1].size:
                raise ValueError(f"folder: the {split} split of {self.root} has no audio "
                                 f"(data.folder.eval_fraction = {self.eval_fraction}); change "
                                 f"data.folder.eval_fraction or add files")
        if self.metadata is not None:
            _ = self._captions  # Reads it now: a bad file fails at construction, not at a batch.

    @functools.cached_property
    def _manifest(self) -> dict:
        """{'root', 'folder' (the decode cache or None), 'files' (usable), 'skipped'}."""
        root, cache_dir = os.path.abspath(self.root), self.cache_dir or synth.default_cache_dir()
        if self.cache:
            folder = cache.cache_folder(root, cache_dir, sample_rate=self.sample_rate,
                                        channels=self.channels, normalize=self.normalize)
            m = cache.build_cache(scan.walk_audio(root, self.follow_symlinks), folder, sample_rate=self.sample_rate,
                                  channels=self.channels, normalize=self.normalize,
                                  silence_db=self.silence_db, silence_min_seconds=self.silence_min_seconds)
        else:
            folder, m = None, scan.build_manifest(root, cache_dir, follow_symlinks=self.follow_symlinks)
            m = {"files": {r: {**e, "source_channels": e["channels"], "segments": [
                [0, int(round(e["frames"] * self.sample_rate / e["sample_rate"]))]]}
                for r, e in m["files"].items()}, "skipped": m["skipped"]}
        found = len(m["files"]) + len(m["skipped"])
        usable = {r: e for r, e in m["files"].items() if _kept(e) > 0}
        silent = len(m["files"]) - len(usable)
        log = logger.warning if m["skipped"] or silent else logger.info
        log("audio folder %s: %d files, %d usable, %d skipped as unreadable/corrupt, "
            "%d skipped as silent", root, found, len(usable), len(m["skipped"]), silent)
        if not usable:
            reasons = "; ".join(f"{r}: {e['reason']}" for r, e in list(m["skipped"].items())[:5])
            raise ValueError(f"no usable audio in {root}: {found} audio files found, "
                             f"{len(m['skipped'])} unreadable, {silent} silent. {reasons}")
        converted = sum(e["source_channels"] != self.channels for e in usable.values())
        if converted and self.split == "train":
            how = "stereo files down-mixed to mono" if self.channels == 1 else "mono files copied to stereo"
            logger.info("audio folder %s: %d %s (data.channels = %d)", root, converted, how, self.channels)
        return {"root": root, "folder": folder, "files": usable, "skipped": m["skipped"]}

    @functools.cached_property
    def _split(self) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """{split: (files, pieces [P, 3] int64 of (file index, start, end) at sample_rate)}."""
        files = self._manifest["files"]
        if len(files) == 1:  # split in time: the last eval_fraction of the kept audio is eval
            (rel,) = files
            n = _kept(files[rel])
            head, tail = scan.cut_segments(files[rel]["segments"], min(n - 1, round(n * (1 - self.eval_fraction))))
            names = {"train": (rel,), "eval": (rel,)}
            pieces = {"train": [[0, s, e] for s, e in head], "eval": [[0, s, e] for s, e in tail]}
        else:
            evals = scan.split_by_duration({r: _kept(e) / self.sample_rate for r, e in files.items()},
                                           self.eval_fraction)
            names = {"train": tuple(r for r in sorted(files) if r not in evals), "eval": evals}
            pieces = {split: [[i, s, e] for i, r in enumerate(rels) for s, e in files[r]["segments"]]
                      for split, rels in names.items()}
        out = {split: (names[split], np.asarray(pieces[split], np.int64).reshape(-1, 3)) for split in names}
        if self.split == "train":
            logger.info("audio folder %s split by duration (data.folder.eval_fraction = %g): %s",
                        self._manifest["root"], self.eval_fraction, ", ".join(
                            f"{s} {len(n)} files {(p[:, 2] - p[:, 1]).sum() / self.sample_rate:.1f} s"
                            for s, (n, p) in out.items()))
        return out

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

    @property
    def files(self) -> tuple[str, ...]:
        """Relative paths of this split's files, sorted (non-empty: checked at construction)."""
        return self._split[self.split][0]

    @property
    def seconds(self) -> float:
        """Seconds of (kept) audio in this split."""
        pieces = self._split[self.split][1]
        return float((pieces[:, 2] - pieces[:, 1]).sum()) / self.sample_rate

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

    def read(self, rel: str, start: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames [start, start + frames) of file `rel` at `sample_rate`, zero-padded or cut to a
        crop: x [L, C] in [-1, 1] and mask [L, 1] (1 on the frames read)."""
        e, frames = self._manifest["files"][rel], min(frames, self.length)
        if self._manifest["folder"] is not None:
            x = cache.read(self._manifest["folder"], e, start, frames)
        else:
            ratio = e["sample_rate"] / self.sample_rate
            src = int(round(start * ratio))
            margin = int(math.ceil(32 * ratio))  # Source samples beyond the crop, for the filter.
            lo = max(0, src - margin)
            x = io.read_audio(os.path.join(self._manifest["root"], rel), sample_rate=self.sample_rate,
                              channels=self.channels, start=lo,
                              frames=int(math.ceil(frames * ratio)) + src - lo + margin)
            skip = int(round((src - lo) / ratio))
            x = x[skip:skip + frames]
            if self.normalize and e["peak"] > 0:  # The file's peak, so crops keep their level.
                x = x * (0.95 / e["peak"])
        x, m = _pad(x, self.length)
        return np.clip(x, -1.0, 1.0), m

    @functools.cached_property
    def _cumulative(self) -> np.ndarray:
        """[P] int64: frames of kept audio in this split's pieces up to and including each."""
        pieces = self._split[self.split][1]
        return np.cumsum(pieces[:, 2] - pieces[:, 1])

    def draw(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """(file index, start, frames) of one crop: a frame drawn uniformly from the split's kept
        audio picks the segment, then the start is uniform inside it (class docstring)."""
        pieces, cum = self._split[self.split][1], self._cumulative
        i = int(np.searchsorted(cum, rng.integers(cum[-1]), side="right"))
        f, s, e = (int(v) for v in pieces[i])
        start = s + int(rng.integers(max(1, e - s - self.length + 1)))
        return f, start, min(self.length, e - start)

    def batch(self, step: int, batch_size: int, *, seed: int, process_index: int = 0,
              process_count: int = 1) -> dict[str, np.ndarray]:
        """This host's share of the global batch of `step` (class and module docstrings)."""
        pos = host_positions(step, batch_size, process_index, process_count)
        drawn = [self.draw(crop_rng(seed, step, p)) for p in pos]
        idx = np.asarray([d[0] for d in drawn], np.int32)
        crops = [self.read(self.files[f], s, n) for f, s, n in drawn]
        out = {"x": np.stack([c[0] for c in crops]), "mask": np.stack([c[1] for c in crops]),
               "index": idx, "seconds_start": np.asarray([d[1] for d in drawn], np.float32) / np.float32(self.sample_rate)}
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

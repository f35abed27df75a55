"""Fetches real recordings from Debian packages, without installing them (optional; not for CI).

    python experiments/fetch_real_audio.py --out_dir=workdirs/real_audio

For each package (default: hydrogen-drumkits, singularity-music), runs `apt-get download` (no
root needed, no install) in `out_dir/debs`, unpacks it with `dpkg-deb -x` into
`out_dir/<package>`, and writes `out_dir/manifest.json`: per package its version, the .deb's
sha256 and the licences named in its `debian/copyright`; per audio file (wav/flac/ogg) its path,
size and sha256. Needs Debian/Ubuntu with the archive reachable (`apt-get update` done).
Then point the 'folder' dataset at `out_dir/<package>`.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import subprocess

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", "workdirs/real_audio", "where debs, files and manifest go")
flags.DEFINE_list("packages", ["hydrogen-drumkits", "singularity-music"], "Debian packages")

AUDIO = (".wav", ".flac", ".ogg")


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def licences(tree: str, package: str) -> list[str]:
    """Licence names from the DEP-5 copyright file(s) shipped in the package."""
    names = set()
    for path in glob.glob(os.path.join(tree, "usr/share/doc/*/copyright")):
        with open(path, errors="replace") as f:
            names.update(m.strip() for m in re.findall(r"^License:\s*(.+)$", f.read(), re.M))
    return sorted(names) or [f"unknown: read {tree}/usr/share/doc/{package}/copyright"]


def fetch(package: str, out_dir: str) -> dict:
    debs = os.path.join(out_dir, "debs")
    os.makedirs(debs, exist_ok=True)
    subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
    deb = sorted(glob.glob(os.path.join(debs, f"{package}_*.deb")))[-1]
    tree = os.path.join(out_dir, package)
    subprocess.run(["dpkg-deb", "-x", deb, tree], check=True)
    version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True,
                             capture_output=True, text=True).stdout.strip()
    files = []
    for root, _, names in os.walk(tree):
        for name in sorted(names):
            if name.lower().endswith(AUDIO):
                path = os.path.join(root, name)
                files.append({"path": os.path.relpath(path, out_dir),
                              "bytes": os.path.getsize(path), "sha256": sha256(path)})
    return {"package": package, "version": version, "deb": os.path.relpath(deb, out_dir),
            "deb_sha256": sha256(deb), "licenses": licences(tree, package),
            "num_audio_files": len(files), "files": sorted(files, key=lambda f: f["path"])}


def main(argv):
    del argv
    manifest = {"packages": [fetch(p, FLAGS.out_dir) for p in FLAGS.packages]}
    path = os.path.join(FLAGS.out_dir, "manifest.json")
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1)
    for p in manifest["packages"]:
        print(f"{p['package']} {p['version']}: {p['num_audio_files']} audio files, "
              f"licences: {', '.join(p['licenses'])}")
    print(f"manifest: {path}")


if __name__ == "__main__":
    app.run(main)

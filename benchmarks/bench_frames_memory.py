"""Peak memory of iterating a video's frames: it must not grow with the video's length.

Writes a synthetic 1080p video as JPEG frames (and as an MJPG .avi), then, in a fresh subprocess
per case, iterates all frames through the suite's lazy readers and reports the peak RSS. Usage::

    python benchmarks/bench_frames_memory.py [--frames 100 1000] [--size 1080x1920] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

CHILD = r"""
import json, sys, time
from benchmark.data.frames import ImageFiles, VideoSample

def hwm():  # peak RSS of this process (VmHWM starts afresh at exec, unlike ru_maxrss)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

kind, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = hwm()
t0 = time.perf_counter()
src = ImageFiles.from_dir(path) if kind == "jpeg" else VideoSample.from_path(path).frames
if kind == "jpeg":
    src.paths = src.paths[:n]
count, checksum = 0, 0
for i, frame in enumerate(src):
    if i >= n:
        break
    checksum += int(frame[0, 0, 0]); count += 1
peak = hwm()
print(json.dumps({"frames": count, "peak_rss_mib": peak / 1024, "import_rss_mib": base / 1024,
                  "s": time.perf_counter() - t0}))
"""


def write_frames(directory: Path, n: int, h: int, w: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    for i in range(n):
        path = directory / f"{i:05d}.jpg"
        if not path.exists():
            Image.fromarray(np.roll(base, 7 * i, axis=1)).save(path, quality=85)


def write_avi(path: Path, n: int, h: int, w: int) -> None:
    import cv2

    if path.exists():
        return
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
    for i in range(n):
        writer.write(np.roll(base, 7 * i, axis=1))
    writer.release()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--size", default="1080x1920")
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    h, w = (int(x) for x in args.size.split("x"))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="visrepro_frames_"))
    longest = max(args.frames)
    t0 = time.perf_counter()
    write_frames(work / "jpeg", longest, h, w)
    write_avi(work / "video.avi", longest, h, w)
    print(f"wrote {longest} frames of {h}x{w} to {work} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    rows = []
    for kind, path in (("jpeg", work / "jpeg"), ("avi", work / "video.avi")):
        for n in args.frames:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, kind, str(path), str(n)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            row = {"reader": kind, **json.loads(out)}
            rows.append(row)
            print(
                f"{kind:5s} {row['frames']:5d} frames: peak RSS {row['peak_rss_mib']:7.1f} MiB "
                f"(after imports {row['import_rss_mib']:.1f} MiB), {row['frames'] / row['s']:.1f} frames/s"
            )
    for kind in ("jpeg", "avi"):
        peaks = [r["peak_rss_mib"] for r in rows if r["reader"] == kind]
        print(f"{kind}: peak RSS ratio longest/shortest = {peaks[-1] / peaks[0]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

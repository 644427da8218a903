"""Peak memory of generating one long ToyVIS video: it must not grow with the number of frames.

Runs ``generate_toyvis`` for a single train video (no valid videos) of each length in a fresh
subprocess and reports its peak RSS, the RSS after imports, the time and the frame rate. Usage::

    python benchmarks/bench_toyvis_memory.py [--frames 100 1000] [--size 360x640] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from benchmark.data.toyvis import generate_toyvis
out, n, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
s = generate_toyvis(out, num_train_videos=1, num_valid_videos=0, frames=n, size=(h, w), seed=0, progress=False)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"frames": s.splits["train"].frames, "tracks": s.splits["train"].tracks,
                  "peak_rss_mib": peak / 1024, "import_rss_mib": base / 1024, "s": dt}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--size", default="360x640")
    ap.add_argument("--workdir", type=Path, help="where to write (default: a temporary directory, removed)")
    args = ap.parse_args()
    h, w = (int(x) for x in args.size.lower().split("x"))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="visrepro_toyvis_"))
    rows = []
    try:
        for n in args.frames:
            out = work / f"toyvis_{n}"
            shutil.rmtree(out, ignore_errors=True)
            res = subprocess.run(
                [sys.executable, "-c", CHILD, str(out), str(n), str(h), str(w)],
                check=True,
                capture_output=True,
                text=True,
            )
            row = json.loads(res.stdout)
            rows.append(row)
            size_mib = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
            print(
                f"{h}x{w} {row['frames']:6d} frames ({row['tracks']} tracks): peak RSS {row['peak_rss_mib']:7.1f} MiB "
                f"(after imports {row['import_rss_mib']:.1f} MiB), {row['s']:.1f} s, "
                f"{row['frames'] / row['s']:.0f} frames/s, {size_mib:.1f} MiB on disk"
            )
            shutil.rmtree(out, ignore_errors=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    if len(rows) > 1:
        print(f"peak RSS ratio longest/shortest = {rows[-1]['peak_rss_mib'] / rows[0]['peak_rss_mib']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

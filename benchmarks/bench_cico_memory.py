"""Peak memory and time of CiCo inference when thousands of detections pass (random weights).

With random weights, Detect keeps thousands of (candidate, class) pairs per clip from a few
hundred candidates: the case where the official code exhausts memory. Each run generates one
ToyVIS video of N frames at the given size, builds the variant with weights drawn from
``torch.manual_seed(SEED)``, predicts it in a fresh subprocess and reports its peak RSS, the time
per stage and the pairs / mask sources per clip. Usage::

    python benchmarks/bench_cico_memory.py [--variant cico_yolact_r50.ytvis2019] [--frames 7 15]
        [--size 360x640] [--seed 1] [--threads 2] [--workdir DIR]
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
import torch
variant, frames_dir, seed, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(seed)
import methods.cico.adapter as A
from benchmark.data.frames import VideoSample
from benchmark.registry import create_adapter
clips, stage_s = [], {}
detect = A.detect
def counted(*a, **k):
    d = detect(*a, **k)
    clips.append({"pairs": len(d), "mask_sources": int(d.masks.shape[0])})
    return d
A.detect = counted
for name in ("preprocess", "forward", "track", "postprocess"):
    f = getattr(A.CiCoAdapter, name)
    def timed(self, *a, _f=f, _n=name, **k):
        t = time.perf_counter()
        try:
            return _f(self, *a, **k)
        finally:
            stage_s[_n] = stage_s.get(_n, 0.0) + time.perf_counter() - t
    setattr(A.CiCoAdapter, name, timed)
ad = create_adapter(variant)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
preds = ad.predict_video(VideoSample.from_path(frames_dir, video_id=1))
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"tracks": len(preds), "clips": clips, "stage_s": stage_s, "s": dt,
                  "peak_rss_mib": peak / 1024, "model_rss_mib": base / 1024}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="cico_yolact_r50.ytvis2019")
    ap.add_argument("--frames", type=int, nargs="+", default=[7, 15])
    ap.add_argument("--size", default="360x640")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", type=Path, help="where to write (default: a temporary directory, removed)")
    args = ap.parse_args()
    h, w = (int(x) for x in args.size.lower().split("x"))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="visrepro_cico_mem_"))
    try:
        from benchmark.data.toyvis import generate_toyvis

        for n in args.frames:
            out = work / f"toyvis_{n}"
            shutil.rmtree(out, ignore_errors=True)
            generate_toyvis(
                out, num_train_videos=1, num_valid_videos=0, frames=n, size=(h, w), seed=0, progress=False
            )
            frames_dir = next((out / "train" / "JPEGImages").iterdir())
            res = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    args.variant,
                    str(frames_dir),
                    str(args.seed),
                    str(args.threads),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            row = json.loads(res.stdout.strip().splitlines()[-1])
            pairs = sum(c["pairs"] for c in row["clips"])
            sources = sum(c["mask_sources"] for c in row["clips"])
            stages = ", ".join(f"{k} {v:.1f} s" for k, v in row["stage_s"].items())
            print(
                f"{args.variant} seed {args.seed}, {n} frames {h}x{w}, {len(row['clips'])} clips: "
                f"{pairs} (candidate, class) pairs of {sources} mask sources, {row['tracks']} tracks; "
                f"peak RSS {row['peak_rss_mib']:.0f} MiB (model built: {row['model_rss_mib']:.0f} MiB), "
                f"{row['s']:.1f} s ({stages})"
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

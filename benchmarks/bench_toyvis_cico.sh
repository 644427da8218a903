#!/usr/bin/env bash
# ToyVIS end to end for the small CiCo: generate -> evaluate the untrained model -> train from
# scratch -> predict -> evaluate. Prints AP (trained vs untrained), training wall and CPU time.
#
#   benchmarks/bench_toyvis_cico.sh [WORKDIR] [extra visrepro-train options...]
#
# Defaults: WORKDIR=/tmp/bench_toyvis_cico, 2 torch threads, the variant's own schedule
# (methods/cico/train.py: CiCoTrainer.schedule, tiny branch). Not a test: it takes minutes.
set -euo pipefail
WORK=${1:-/tmp/bench_toyvis_cico}
shift || true
VARIANT=cico_yolact_tiny.toyvis
THREADS=${THREADS:-2}
PY=${PYTHON:-python}
mkdir -p "$WORK"
export OMP_NUM_THREADS=$THREADS

[ -f "$WORK/toy/toyvis.json" ] || $PY -m benchmark toyvis --out "$WORK/toy"

# untrained: the seeded initial weights (0 steps), saved in the official layout
$PY -m benchmark.train --variant $VARIANT --dataset "$WORK/toy/annotations/train.json" \
    --out "$WORK/untrained" --max-steps 0 --no-progress --threads "$THREADS"
# trained from scratch; /usr/bin/time reports the process CPU time beside the wall time
/usr/bin/time -f "train: %e s wall, %U s user + %S s sys CPU" \
    $PY -m benchmark.train --variant $VARIANT --dataset "$WORK/toy/annotations/train.json" \
    --out "$WORK/trained" --no-progress --threads "$THREADS" --log-every 100 "$@"

for run in untrained trained; do
    $PY -m benchmark predict --variant $VARIANT --checkpoint "$WORK/$run/model_final.pth" \
        --dataset "$WORK/toy/annotations/valid.json" --frames-root "$WORK/toy/valid/JPEGImages" \
        --out "$WORK/$run/results.json" --overwrite --no-progress
    $PY - "$WORK/toy/annotations/valid.json" "$WORK/$run/results.json" "$run" <<'PYEOF'
import sys
from benchmark.evaluation.evaluate import evaluate
s = evaluate(sys.argv[1], sys.argv[2]).stats
print(f"{sys.argv[3]}: AP {100 * s['AP']:.1f}  AP50 {100 * s['AP50']:.1f}  AR10 {100 * s['AR10']:.1f} (percent)")
PYEOF
done
$PY -c "import json,sys; s=json.load(open(sys.argv[1])); print('train summary:', {k: s[k] for k in ('step','wall_s','cpu_s','last_losses')})" "$WORK/trained/train_summary.json"

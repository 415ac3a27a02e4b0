#!/usr/bin/env bash
# Two 1-thread workers of the evidence study on a 2-core machine: mean fusion and full DMAF-Net under mr2468, one worker
# on the even seeds of FIRST..LAST, one on the odd seeds (the arrangement of stages 5 and 6, benchmarks/evidence_reading.md).
# Each worker skips finished runs, resumes a run cut short from its checkpoint and commits each result file as it lands.
#   tools/evidence_workers.sh 1048 1100        # start (stage 5); logs in runs/evidence_workers/
#   pkill -STOP -f benchmarks/evidence.py      # pause both (for a timing or a test run); -CONT to go on
#   pkill -TERM -f benchmarks/evidence.py      # stop both; the same command later resumes where they stopped
# Don't run a 2-thread job beside them: three threads on two cores slow every step several-fold.
set -euo pipefail
cd "$(dirname "$0")/.."
FIRST=${1:?first seed}; LAST=${2:?last seed}
LOGS=runs/evidence_workers; mkdir -p "$LOGS"
for START in "$FIRST" $((FIRST + 1)); do
  SEEDS=$(seq "$START" 2 "$LAST" | tr '\n' ' ')
  [ -n "$SEEDS" ] || continue
  setsid nohup .venv/bin/python benchmarks/evidence.py --commit --threads 1 --settings mr2468 \
    --configs 'mean fusion' 'full DMAF-Net (+ DTM)' --seeds $SEEDS > "$LOGS/seeds_from_$START.log" 2>&1 < /dev/null &
  echo "worker on seeds ${SEEDS}(log $LOGS/seeds_from_$START.log)"
done

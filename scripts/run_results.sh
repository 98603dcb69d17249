#!/usr/bin/env bash
# The runs behind reports/results.md, one task after another (each takes the shared CPU lock):
# prompt tuning is `softprompt train` with no setting beyond task, model and (BoolQ) the
# 32-example FewGLUE train file; then the baselines (majority class, zero-shot prompt design) on
# the whole dev set, and the report is rebuilt.
#
#     bash scripts/run_results.sh smollm2 rte cb mrpc
#
# Runs go to runs/report/<model>/<task>; records to reports/results/<model>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1
shift
lock=/tmp/softprompt-cpu.lock
sp=.venv/bin/softprompt
ex=(.venv/bin/python -m softprompt.cli.experiments)
for task in "$@"; do
    split=train
    extra=()
    if [ "$task" = boolq ]; then split=fewglue32-train; extra=(--train-split "$split"); fi
    out=runs/report/$model/$task
    if [ -f "$out/checkpoint.pt" ] && [ ! -f "$out/result.json" ]; then extra+=(--resume); fi
    if [ ! -f "$out/result.json" ]; then
        flock "$lock" "$sp" train --task "$task" --model "$model" --out "$out" "${extra[@]}"
    fi
    "${ex[@]}" report-import --task "$task" --model "$model" --run "$out" --train-split "$split"
    flock "$lock" "${ex[@]}" report-run --task "$task" --model "$model" --methods majority,design \
        --settings reports/report_settings.json
    "${ex[@]}" report-build
done
"${ex[@]}" prompt-manifest  # the records now cite these runs' prompt files

#!/usr/bin/env bash
# The main job on the embedded default: install, initialise, ingest the real 2013 New York
# flights, run the data-quality and KPI notebooks through the task API, show what was made,
# then serve the dashboards (skip that with --no-serve).
set -euo pipefail
serve=1
[ "${1:-}" = "--no-serve" ] && serve=0
source "$(dirname "$0")/_venv.sh" ""
cd "$ROOT"
start=$(date +%s)
workbench init
for notebook in ingest_flights data_quality flights_kpis; do
    workbench run "notebooks/$notebook.ipynb"
done
python scripts/flights_summary.py
echo "main job finished in $(( $(date +%s) - start )) s (home: ${WORKBENCH_HOME:-$HOME/.workbench})"
if [ "$serve" = 1 ]; then
    echo "Dashboards: http://127.0.0.1:8866 — log in as admin with the one-time password shown"
    echo "above on the first run (or set one: workbench users passwd admin). Ctrl-C stops."
    exec workbench dashboards serve --port 8866
fi

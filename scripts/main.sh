#!/usr/bin/env bash
# The main job on the embedded default: install, initialise, show the workbench's status.
set -euo pipefail
source "$(dirname "$0")/_venv.sh" ""
cd "$ROOT"
start=$(date +%s)
workbench init
workbench doctor
echo "main job finished in $(( $(date +%s) - start )) s (home: ${WORKBENCH_HOME:-$HOME/.workbench})"

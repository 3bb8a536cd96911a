#!/usr/bin/env bash
# Install the project with its development extras and run the whole test suite.
# Needs PostgreSQL and Redis (see README, 'Tests'); with CI=true a missing one fails the run.
set -euo pipefail
source "$(dirname "$0")/_venv.sh" dev
cd "$ROOT"
exec python -m pytest "$@"

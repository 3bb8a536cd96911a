#!/usr/bin/env bash
# Build the JupyterLab extension (labextension/, TypeScript) into labextension/dist/, the
# prebuilt extension the wheel ships: npm packages at the versions of its lock file, the
# TypeScript compiled, its unit tests run, then bundled by JupyterLab's builder against the
# installed JupyterLab. Needs Node.js 20 or newer; PYTHON is the environment's Python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT/labextension"
npm ci --no-audit --no-fund --loglevel=error
npx tsc
node --test test/
core="$("$PYTHON" -c 'import jupyterlab, pathlib; print(pathlib.Path(jupyterlab.__file__).parent / "staging")')"
rm -rf "$ROOT/labextension/dist"
node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$core" .

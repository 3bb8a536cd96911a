# Sourced by the scripts: create .venv with the project installed, unless it is up to date.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${WORKBENCH_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${1:-}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "Workbench needs Python 3.11 or newer; found $("$PYTHON" --version 2>&1)." >&2
    exit 1
fi
# One line per step on stderr. pip says only its errors (-qq), and the build backend's warning
# about editable installs, which asks nothing of the user, is silenced.
_setup_step() { echo "setup: $*" >&2; }
if [ ! -x "$VENV/bin/python" ]; then
    _setup_step "creating the virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
    PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install -qq --upgrade pip
fi
stamp="$VENV/.installed-$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)${EXTRAS:+-$EXTRAS}"
if [ ! -f "$stamp" ]; then
    _setup_step "installing Workbench${EXTRAS:+ with its $EXTRAS tools} and its dependencies" \
        "(a minute or more the first time)"
    setup_started=$(date +%s)
    PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install -qq -e "$ROOT${EXTRAS:+[$EXTRAS]}"
    touch "$stamp"
    _setup_step "installed in $(( $(date +%s) - setup_started )) s"
fi
export PATH="$VENV/bin:$PATH"

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
stamp="$VENV/.installed-$(cat "$ROOT/pyproject.toml" "$ROOT/deploy/hub/package-lock.json" \
    "$ROOT"/labextension/package-lock.json "$ROOT"/labextension/src/* "$ROOT"/labextension/style/* \
    "$ROOT"/labextension/test/* | sha256sum | cut -c1-16)${EXTRAS:+-$EXTRAS}"
if [ ! -f "$stamp" ]; then
    _setup_step "installing Workbench${EXTRAS:+ with its $EXTRAS tools} and its dependencies" \
        "(a minute or more the first time)"
    setup_started=$(date +%s)
    PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install -qq -e "$ROOT${EXTRAS:+[$EXTRAS]}"
    # A wheel enables the server extension in every Jupyter server of its environment (its
    # data file in etc/jupyter); an editable install carries no data files: the same file.
    install -D -m 0644 "$ROOT/jupyter-config/jupyter_server_config.d/workbench.json" \
        "$VENV/etc/jupyter/jupyter_server_config.d/workbench.json"
    install -D -m 0644 "$ROOT/jupyter-config/labconfig/page_config.json" \
        "$VENV/etc/jupyter/labconfig/page_config.json"
    if [ "$EXTRAS" = dev ]; then
        # JupyterHub's proxy, from npm at the versions of the lock file, beside the hub.
        _setup_step "installing JupyterHub's proxy (npm ci --prefix deploy/hub)"
        npm ci --prefix "$ROOT/deploy/hub" --no-audit --no-fund --loglevel=error >&2
        ln -sf "$ROOT/deploy/hub/node_modules/.bin/configurable-http-proxy" "$VENV/bin/"
        # The JupyterLab extension, built as the wheel ships it and linked where JupyterLab
        # finds the extensions of this environment (a wheel installs it there itself).
        _setup_step "building the JupyterLab extension (scripts/build_labextension.sh)"
        PYTHON="$VENV/bin/python" bash "$ROOT/scripts/build_labextension.sh" >&2
        mkdir -p "$VENV/share/jupyter/labextensions"
        ln -sfn "$ROOT/labextension/dist" "$VENV/share/jupyter/labextensions/workbench-lab"
    fi
    touch "$stamp"
    _setup_step "installed in $(( $(date +%s) - setup_started )) s"
fi
export PATH="$VENV/bin:$PATH"

"""What every deployment file in deploy/ must respect: the names Workbench reads from the
environment, the secret files, the kernel hosts' capabilities, what a secret looks like.

Shared by the static tests of the image, the compose file and the Kubernetes manifests, so one
rule is written once and the three files cannot drift apart.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from workbench.core.config import SECRET_FIELDS, Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
#: The virtualenv's scripts: the linters and validators the deploy tests run.
BIN = Path(sys.executable).parent
#: The files `workbench deploy secrets DIR` writes (the keys of the Kubernetes Secret).
SECRET_KEYS = {"secret_key", "postgres_password", "database_url"}
#: Every WORKBENCH_ variable Workbench reads: its settings and the secrets' *_FILE spellings.
KNOWN_ENV = {f"WORKBENCH_{name.upper()}" for name in Settings.model_fields} | {
    f"WORKBENCH_{name.upper()}_FILE" for name in SECRET_FIELDS
}
#: Secret settings, which a deployment gives only as files (WORKBENCH_*_FILE).
SECRET_ENV = {f"WORKBENCH_{name.upper()}" for name in SECRET_FIELDS}
#: What starting a kernel as another user takes (WORKBENCH_KERNEL_USER's description).
KERNEL_HOST_CAPABILITIES = {"SETUID", "SETGID", "CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL"}
#: The image's users: the services' and the kernels'.
SERVICE_UID, KERNEL_UID, KERNEL_USER = 10001, 10002, "wbkernel"
SECRETISH_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY($|_)|DSN|CREDENTIAL", re.I)
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I)

"""Notebook runs side by side: a warm worker vs the papermill command vs papermill in-process.

The same trivial parameterised notebook (tests/notebooks/trivial.ipynb, one parameter) runs:

- ``wb.run`` through a warm :class:`workbench.Worker` (end-to-end: validation, run record,
  execution, output notebook and HTML, final record), one run at a time with a pause between
  runs so the worker has started the replacement kernel, as a worker between requests would;
- ``workbench run NB -p x N`` on the command line (a new process): with the warm worker off
  (``WORKBENCH_WARM_WORKER_IDLE_SECONDS=0``: each run starts its own kernel), then as a user
  meets it: the first run (its own kernel; it then starts the warm worker in the background)
  and the later runs, which go to that worker;
- the ``papermill`` command (a new process);
- ``papermill.execute_notebook`` in-process (import excluded, paid once).

Usage: ``.venv/bin/python benchmarks/runs.py [--repeat 15]``. Prints medians and ratios, and
the import cost of papermill and of the workbench CLI (``python -X importtime``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "tests" / "notebooks" / "trivial.ipynb"
BIN = Path(sys.executable).parent


#: What the workbench command line does before its imports (workbench.core.startup).
PREAMBLE = {
    "workbench": "from workbench.core.startup import skip_slow_optional_imports as s; s(); ",
}


def _timed(fn, repeat: int, pause: float = 0.0) -> list[float]:
    times = []
    for i in range(repeat):
        if pause:
            time.sleep(pause)
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return times


def _import_seconds(module: str, env: dict[str, str]) -> float:
    """Cumulative import time of ``module`` from ``python -X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PREAMBLE.get(module.split(".")[0], "")
         + f"import {module}"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$", line)
        if match and match.group(2) == module:
            return int(match.group(1)) / 1e6
    return float("nan")


def _stop_listener(sock: Path) -> None:
    """SIGTERM the warm worker listening on ``sock`` and wait for it."""
    import psutil

    for process in psutil.process_iter():
        try:
            if any(c.laddr == str(sock) for c in process.net_connections(kind="unix")):
                process.terminate()
                process.wait(timeout=30)
                return
        except psutil.Error:
            continue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs per variant (>= 10)")
    args = parser.parse_args()
    repeat = max(10, args.repeat)

    home = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    os.environ["WORKBENCH_HOME"] = str(home)
    env = dict(os.environ)
    out_dir = home / "papermill"
    out_dir.mkdir()

    import workbench as wb
    from workbench.api import init

    init(admin_password="benchmark-password-1234")  # noqa: S106 - a throwaway home

    results: dict[str, list[float]] = {}

    with wb.Worker(2) as worker:
        time.sleep(3)  # let the worker start its kernels, as a long-lived worker would have
        worker.run(NOTEBOOK, x=0)  # first-use imports in this process (nbconvert templates)
        runs = []

        def warm(i: int) -> None:
            runs.append(worker.run(NOTEBOOK, x=i))

        results["wb.run, warm worker"] = _timed(warm, repeat, pause=1.5)
        assert all(r.ok for r in runs), [r.error_message for r in runs if not r.ok]

    def cli_with(idle: str) -> Callable[[int], None]:
        def cli(i: int) -> None:
            subprocess.run(
                [str(BIN / "workbench"), "run", str(NOTEBOOK), "-p", "x", str(i)],
                check=True, capture_output=True,
                env={**env, "WORKBENCH_WARM_WORKER_IDLE_SECONDS": idle},
            )  # fmt: skip

        return cli

    results["workbench run (CLI, no warm worker)"] = _timed(cli_with("0"), repeat)

    from workbench.core.config import load_settings
    from workbench.runs.serve import socket_path

    sock = socket_path(load_settings())
    auto = cli_with("300")
    results["workbench run (CLI, first)"] = _timed(auto, 1)  # starts the warm worker after
    ended = time.perf_counter()
    while not sock.exists():
        time.sleep(0.05)
    ready = time.perf_counter() - ended
    try:
        results["workbench run (CLI, later)"] = _timed(auto, repeat, pause=1.5)
    finally:
        _stop_listener(sock)

    def papermill_cli(i: int) -> None:
        subprocess.run(
            [str(BIN / "papermill"), "-p", "x", str(i), str(NOTEBOOK), str(out_dir / f"{i}.ipynb")],
            check=True, capture_output=True, env=env,
        )  # fmt: skip

    results["papermill command"] = _timed(papermill_cli, repeat)

    import papermill

    def papermill_inproc(i: int) -> None:
        papermill.execute_notebook(
            str(NOTEBOOK), str(out_dir / f"in-{i}.ipynb"), parameters={"x": i}, progress_bar=False
        )

    results["papermill.execute_notebook"] = _timed(papermill_inproc, repeat)

    base = statistics.median(results["papermill command"])
    print(
        f"\nNotebook: {NOTEBOOK.relative_to(ROOT)}; {repeat} runs per variant; "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'variant':32} {'median s':>9} {'min s':>7} {'max s':>7} {'vs papermill cmd':>17}")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:32} {median:9.3f} {min(times):7.3f} {max(times):7.3f} {base / median:16.1f}x")
    print("\nImport cost (python -X importtime, cumulative; workbench's as its CLI imports):")
    for module in ("papermill", "workbench.cli.app", "workbench.runs.execute"):
        print(f"  {module:28} {_import_seconds(module, env):.3f} s")
    goal_warm = statistics.median(results["wb.run, warm worker"])
    first = results["workbench run (CLI, first)"][0]
    later = statistics.median(results["workbench run (CLI, later)"])
    print(f"\nThe warm worker listened {ready:.2f} s after the first run ended.")
    print(
        f"Goals: warm wb.run <= 0.150 s: {goal_warm:.3f} s "
        f"({'met' if goal_warm <= 0.15 else 'missed'}); >= 12x papermill command: "
        f"{base / goal_warm:.1f}x ({'met' if base / goal_warm >= 12 else 'missed'}); "
        f"first CLI run no slower than the papermill command: {base / first:.2f}x "
        f"({'met' if first <= base else 'missed'}); later CLI runs >= 5x: {base / later:.1f}x "
        f"({'met' if base / later >= 5 else 'missed'})"
    )


if __name__ == "__main__":
    main()

"""Dashboard render time: `workbench dashboards serve` vs plain Voila, same notebook, same data.

Both servers render dashboards/flights_operations.ipynb for viewers of two teams on a real
PostgreSQL database holding the 2013 flights (row-level security per team) with the Redis
query cache. Plain Voila gets the same viewer token through the same header, so both run the
same per-viewer cells (team a's viewer: the results its scheduled KPI run recorded; team b's:
live queries); the difference is what is done before the request arrives.

Measured at the client on loopback (time to the last byte of the page): single requests
(each page is closed afterwards, as a browser tab would, and the next request comes once the
pool is refilled) and bursts of 5 concurrent viewers; the time from `serve` to the first
rendered dashboard; kernel processes left after SIGTERM.

    .venv/bin/python benchmarks/dashboards.py [--singles 10] [--bursts 4] [--months 12]
    .venv/bin/python benchmarks/dashboards.py --first-only --starts 5   # cold starts only
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from tests import services  # noqa: E402
from tests.e2e.world import DASHBOARDS, World, build_world, drop_roles, free_port  # noqa: E402
from workbench.app import Workbench  # noqa: E402
from workbench.core.config import Settings, load_settings  # noqa: E402
from workbench.dashboards.tokens import VIEWER_HEADER, identity_of  # noqa: E402
from workbench.db import migrate  # noqa: E402
from workbench.db.engine import create_workbench_engine  # noqa: E402
from workbench.db.models import User  # noqa: E402

NOTEBOOK = "flights_operations.ipynb"
KERNEL_ID = re.compile(r'"kernelId":\s*"([0-9a-f-]+)"')


class Target:
    """One server under test and how a viewer asks it for the dashboard."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], base: str, page: str) -> None:
        self.name, self.process, self.base, self.page = name, process, base, page
        self.sessions: dict[str, requests.Session] = {}

    failures = 0

    def render(self, viewer: str) -> float:
        """Seconds to the page's last byte; a failed page counts with the time it took."""
        session = self.sessions[viewer]
        started = time.perf_counter()
        try:
            reply = session.get(self.base + self.page, timeout=60, headers=self.headers(viewer))
        except requests.RequestException:
            self.failures += 1
            return time.perf_counter() - started
        elapsed = time.perf_counter() - started
        if reply.status_code != 200 or "kernelId" not in reply.text:
            self.failures += 1
            return elapsed
        found = KERNEL_ID.search(reply.text)
        if found:  # close the page as a browser tab would
            xsrf = session.cookies.get("_xsrf", "")
            session.post(
                f"{self.base}voila/api/shutdown/{found.group(1)}",
                headers={"X-XSRFToken": xsrf},
                timeout=30,
            )
        return elapsed

    def headers(self, viewer: str) -> dict[str, str]:
        return {}

    def kernels(self) -> list[psutil.Process]:
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [p for p in children if _is_kernel(" ".join(p.cmdline()))]

    def stop(self) -> int:
        kernels = self.kernels()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        time.sleep(1)
        left = [k for k in kernels if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
        for k in left:
            k.kill()
        return len(left)


def _is_kernel(command: str) -> bool:
    """A kernel process (the first one runs in the server's spare process)."""
    return "ipykernel" in command or "workbench.dashboards.spare" in command


class PlainVoila(Target):
    """Voila as shipped; the benchmark hands it the viewer identity a login would give."""

    def __init__(self, *args: object, identities: dict[str, str]) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.identities = identities

    def headers(self, viewer: str) -> dict[str, str]:
        return {VIEWER_HEADER: self.identities[viewer]}


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer")


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"port {port} did not open")


def pool_filled(log: Path, count: int, timeout: float = 120) -> None:
    """Wait until the server logged ``count`` 'pre-heated kernel ready' lines in total."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.read_text(errors="replace").count("Pre-heated kernel") >= count:
            return
        time.sleep(0.1)
    raise RuntimeError("the kernel pool was not refilled")


def login(base: str, name: str, password: str) -> requests.Session:
    session = requests.Session()
    session.get(base + "login", timeout=30)
    reply = session.post(
        base + "login",
        data={"username": name, "password": password, "_xsrf": session.cookies.get("_xsrf")},
        timeout=30,
    )
    reply.raise_for_status()
    return session


def launch(
    port: int, pool_size: int, log: Path, env: dict[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """`workbench dashboards serve` in a subprocess, its output in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "workbench", "dashboards", "serve", "--port", str(port),
             "--pool-size", str(pool_size), "--folder", str(DASHBOARDS)],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def start_ours(
    world: World, env: dict[str, str], work: Path, pool_size: int
) -> tuple[float, float, int]:
    """One cold start: seconds from `serve` to the first rendered, logged-in dashboard and to
    the login page answering, and the kernels left after SIGTERM."""
    port = free_port()
    started = time.perf_counter()
    process = launch(port, pool_size, work / f"start-{port}.log", env, work)
    target = Target(
        "workbench serve", process, f"http://127.0.0.1:{port}/", f"voila/render/{NOTEBOOK}"
    )
    try:
        wait_for(target.base + "login", process)
        answering = time.perf_counter() - started
        target.sessions["a"] = login(target.base, *world.viewers["a"])
        asked = time.perf_counter() - started
        first = asked + target.render("a")  # to the page's last byte, not its closing
        if target.failures:
            raise RuntimeError("the first dashboard did not render")
    finally:
        left = target.stop()
    return first, answering, left


def measure(
    target: Target, args: argparse.Namespace, refill: Callable[[int], None]
) -> dict[str, list[float]]:
    viewers = list(target.sessions)
    singles: list[float] = []
    for i in range(args.singles):
        singles.append(target.render(viewers[i % len(viewers)]))
        refill(1)
    bursts: list[list[float]] = []
    for _ in range(args.bursts):
        with ThreadPoolExecutor(5) as pool:
            bursts.append(list(pool.map(target.render, [viewers[i % 2] for i in range(5)])))
        refill(5)
    return {
        "singles": singles,
        "burst": [t for b in bursts for t in b],
        "burst_max": [max(b) for b in bursts],
    }


def summary(name: str, figures: dict[str, list[float]]) -> None:
    s, b, m = figures["singles"], figures["burst"], figures["burst_max"]
    print(
        f"{name:<16} single median {statistics.median(s):6.3f} s"
        f" (min {min(s):.3f}, max {max(s):.3f})"
        f" | burst-of-5 median {statistics.median(b):6.3f} s, slowest {max(b):6.3f} s"
        f" | per-burst slowest {', '.join(f'{x:.2f}' for x in m)}"
    )


def main() -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM too
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=10)
    parser.add_argument("--bursts", type=int, default=4)
    parser.add_argument("--months", type=int, default=12, help="months of 2013 flights to load")
    parser.add_argument("--pool-size", type=int, default=5)
    parser.add_argument("--starts", type=int, default=1, help="cold starts to time")
    parser.add_argument(
        "--first-only", action="store_true", help="only time cold starts, not renders"
    )
    args = parser.parse_args()

    problem = services.check_postgres() or services.check_redis()
    if problem:
        sys.exit(f"benchmark needs PostgreSQL and Redis: {problem}")
    work = Path(tempfile.mkdtemp(prefix="wb-bench-dash-"))
    name = services.new_database_name("wbbench")
    services.create_database(name)
    url = services.sqlalchemy_url(name)
    engine = create_workbench_engine(Settings(_env_file=None), url)
    migrate.upgrade(engine)
    engine.dispose()
    world: World | None = None
    started_targets: list[Target] = []
    try:
        world = build_world(url, work / "home", months=tuple(range(1, args.months + 1)))
        world.env["WORKBENCH_REDIS_URL"] = services.REDIS_URL
        env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("WORKBENCH_")}
        env.update(world.env)
        print(
            f"data: {len(world.flights):,} flights, team a {len(world.rows_of('a')):,} rows, "
            f"team b {len(world.rows_of('b')):,} rows; pool size {args.pool_size}"
        )

        # -- Workbench ------------------------------------------------------------------
        starts = [start_ours(world, env, work, args.pool_size) for _ in range(args.starts)]
        for n, (first, answering, left) in enumerate(starts, 1):
            print(
                f"start {n}: first dashboard {first:.2f} s after `serve` (login page answering "
                f"after {answering:.2f} s); kernels left after SIGTERM: {left}"
            )
        if args.first_only:
            firsts = [first for first, _answering, _left in starts]
            print(f"first dashboard after `serve`: median {statistics.median(firsts):.2f} s")
            return
        first_page = starts[0][0]
        answering = starts[0][1]
        port = free_port()
        log = work / "workbench.log"
        process = launch(port, args.pool_size, log, env, work)
        ours = Target(
            "workbench serve", process, f"http://127.0.0.1:{port}/", f"voila/render/{NOTEBOOK}"
        )
        started_targets.append(ours)
        wait_for(ours.base + "login", process)
        for team in ("a", "b"):
            ours.sessions[team] = login(ours.base, *world.viewers[team])

        # the flights pool (the operations dashboard keeps none), plus one per pooled page
        def refill_ours(_used: int = 0) -> None:
            used = log.read_text(errors="replace").count("Using pre-heated kernel")
            pool_filled(log, args.pool_size + used)

        refill_ours()
        ours.render("a")  # warm: each viewer's query results are in the cache
        ours.render("b")
        refill_ours()
        figures_ours = measure(ours, args, refill_ours)
        left_ours = ours.stop()

        # -- plain Voila ----------------------------------------------------------------
        settings = load_settings(
            secret_key=world.env["WORKBENCH_SECRET_KEY"], redis_url=services.REDIS_URL
        )
        bench = Workbench(settings, url)
        with bench.session() as session:
            identities = {
                team: identity_of(bench, u).dump()
                for team in ("a", "b")
                for u in session.scalars(
                    select(User).where(User.username == world.viewers[team][0])
                )
            }
        bench.close()
        port = free_port()
        plain_log = work / "voila.log"
        started = time.perf_counter()
        with plain_log.open("wb") as out:
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / "voila"), str(DASHBOARDS / NOTEBOOK),
                 "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
                 f"--VoilaConfiguration.http_header_envs={VIEWER_HEADER}"],
                cwd=DASHBOARDS, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        summary("workbench serve", figures_ours)  # printed early: the plain run takes long
        plain = PlainVoila(
            "plain voila",
            process,
            f"http://127.0.0.1:{port}/",
            "",
            identities=identities,
        )
        started_targets.append(plain)
        wait_for_port(port, process)  # its "/" renders the notebook: do not ask it that
        for team in ("a", "b"):
            plain.sessions[team] = requests.Session()
        plain_first = time.perf_counter() - started
        plain_first += plain.render("a")  # to the page's last byte, not its closing
        plain.render("b")
        figures_plain = measure(plain, args, lambda _used: time.sleep(1))
        left_plain = plain.stop()

        print()
        summary("workbench serve", figures_ours)
        summary("plain voila", figures_plain)
        ratio = statistics.median(figures_plain["singles"]) / statistics.median(
            figures_ours["singles"]
        )
        print(f"single-request speed-up: {ratio:.1f}x")
        print(
            f"bursts of 5: slowest workbench request {max(figures_ours['burst']):.3f} s; plain"
            f" voila: fastest {min(figures_plain['burst']):.3f} s,"
            f" median {statistics.median(figures_plain['burst']):.3f} s"
        )
        print(
            f"first dashboard rendered after start: workbench {first_page:.2f} s "
            f"(login page answering after {answering:.2f} s), plain voila {plain_first:.2f} s"
        )
        print(f"kernels left after SIGTERM: workbench {left_ours}, plain voila {left_plain}")
        print(f"failed pages: workbench {ours.failures}, plain voila {plain.failures}")
    finally:
        for target in started_targets:
            if target.process.poll() is None:
                target.stop()
        services.drop_database(name)
        if world is not None:
            drop_roles(world)


if __name__ == "__main__":
    main()

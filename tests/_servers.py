"""Throwaway PostgreSQL and Redis servers for the tests: started once per session, then removed.

PostgreSQL: ``initdb`` into a temporary directory, ``pg_ctl start`` on a free loopback port
(with its socket in that directory), trust authentication, no fsync (nothing here tests
power loss). PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` user (or ``nobody``) and its commands run through ``runuser``.

Redis: ``redis-server`` on a free loopback port, nothing saved to disk.

Binaries come from Debian's ``postgresql`` and ``redis-server`` packages (``.ci/run`` installs
them), ``/usr/lib/postgresql/*/bin`` or ``$PATH``. When they are missing, the tests that need
them fail in CI (``CI=true``) and are skipped elsewhere, with the package names to install.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_INSTALL = "apt-get install -y --no-install-recommends postgresql redis-server"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _missing(what: str) -> None:
    message = f"{what} not found: install it ({_INSTALL})"
    if _in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bin(name: str) -> str | None:
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1]
    return shutil.which(name)


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs a PostgreSQL binary as a non-root user, and that user."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], user
    pytest.fail("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def _wait_for_port(port: int, deadline: float, what: str, log: Path | None = None) -> None:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
                pytest.fail(f"{what} did not start on port {port}: {tail}", pytrace=False)
            time.sleep(0.05)


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A DSN to a fresh PostgreSQL cluster, stopped and removed on exit."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        _missing("PostgreSQL (initdb, pg_ctl)")
    assert initdb is not None and pg_ctl is not None
    prefix, user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="wechatpay-pg-"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    data, log = root / "data", root / "server.log"
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    subprocess.run(
        [
            *prefix,
            initdb,
            "-D",
            str(data),
            "-U",
            "wechatpay",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C.UTF-8",
        ],
        check=True,
        capture_output=True,
        env=env,
        cwd=root,
        timeout=120,
    )
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    started = subprocess.run(
        [
            *prefix,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ],
        capture_output=True,
        env=env,
        cwd=root,
        timeout=90,
        check=False,
    )
    if started.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {started.stderr.decode()} {tail}", pytrace=False)
    _wait_for_port(port, time.monotonic() + 30, "PostgreSQL", log)
    try:
        yield f"postgresql://wechatpay@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            env=env,
            cwd=root,
            timeout=60,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[str]:
    """A URL to a fresh Redis server, stopped on exit."""
    server = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if server is None:
        _missing("Redis (redis-server)")
    assert server is not None
    root = Path(tempfile.mkdtemp(prefix="wechatpay-redis-"))
    port = free_port()
    log = root / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(root),
                "--daemonize",
                "no",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    try:
        _wait_for_port(port, time.monotonic() + 30, "Redis", log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A DSN to a fresh PostgreSQL cluster, stopped and removed after the session."""
    with postgres_cluster() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A URL to a fresh Redis server, stopped after the session."""
    with redis_server() as url:
        yield url

"""Acceptance: the wheel, installed (not editable) in a fresh venv, carries its migrations and web assets and runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import with_database
from tests.processes import run_to_completion

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[1]
# What a source copy leaves out: local state and build output, so the build reads only the project's own files.
NOT_SOURCE = {".git", ".venv", ".salespulse", "build", "dist", "tests", "bench", "docs", ".ci",
              ".pytest_cache", ".mypy_cache", ".ruff_cache", "__pycache__"}
DATA_SUFFIXES = (".sql", ".html", ".js", ".css")
STARTUP_SECONDS = 120


def _free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _packages() -> list[str]:
    """The top-level package folders pyproject.toml ships ("bot*" → bot), read rather than assumed."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({p.split(".")[0].rstrip("*") for p in patterns})


def _shipped_sources() -> set[str]:
    """Every Python module and data file (SQL, HTML, JS, CSS) of the packages, as paths inside a wheel."""
    found = set()
    for package in _packages():
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", *DATA_SUFFIXES):
                found.add(path.relative_to(ROOT).as_posix())
    return found


def _ignore_top_level(folder: str, names: list[str]) -> set[str]:
    """shutil.copytree's ignore: local state at the top of the checkout, caches and egg-info anywhere."""
    skipped = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    if Path(folder) == ROOT:
        skipped |= NOT_SOURCE & set(names)
    return skipped


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that would let the venv see this checkout or a configured bot."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP", "DATABASE_URL", "TEST_DATABASE_URL")
    env = {k: v for k, v in os.environ.items()
           if k not in drop and not k.startswith(("SLACK_", "STRIPE_", "SALESPULSE_", "MONITORING_"))}
    return {**env, **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the venv, the wheel): the project built from a copy of its sources, installed in a new venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    venv = tmp / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, check=False)
    if made.returncode != 0 or not (venv / "bin" / "python").exists():
        pytest.skip(f"cannot create a venv with {sys.executable} -m venv (is ensurepip missing?): {made.stderr[-500:]}")
    # Built from a copy: pip builds in the source tree, and build/ or egg-info must not land in the checkout.
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=_ignore_top_level, symlinks=True)
    python = venv / "bin" / "python"
    env = _clean_env()
    run_to_completion(python, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp / "dist", source,
                      cwd=tmp, env=env, timeout=300)
    wheels = sorted((tmp / "dist").glob("salespulse-*.whl"))
    assert len(wheels) == 1, f"expected one salespulse wheel, got {wheels}"
    run_to_completion(python, "-m", "pip", "install", "--quiet", wheels[0], cwd=tmp, env=env, timeout=600)
    yield venv, wheels[0]


def test_the_wheel_holds_every_module_migration_and_web_asset(installed: tuple[Path, Path]) -> None:
    """Each .py, .sql, .html, .js and .css file under the shipped packages is in the wheel, at the same path."""
    _, wheel = installed
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = _shipped_sources()
    assert any(n.endswith(".sql") for n in expected) and any(n.endswith(".html") for n in expected)
    missing = sorted(expected - names)
    assert not missing, f"{wheel.name} lacks: {missing}"


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: tuple[Path, Path], tmp_path: Path) -> None:
    """`import bot` in the venv, away from the checkout, loads the copy installed in site-packages."""
    venv, _ = installed
    where = run_to_completion(venv / "bin" / "python", "-c", "import bot; print(bot.__file__)", cwd=tmp_path,
                              env=_clean_env(), timeout=60).stdout.strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), where


async def test_the_installed_migrations_apply_to_an_empty_database(installed: tuple[Path, Path], server_dsn: str,
                                                                   tmp_path: Path) -> None:
    """`salespulse migrate` from the venv, on an empty database of the test server, applies every migration."""
    venv, _ = installed
    name = f"salespulse_wheel_{os.getpid()}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')  # not the migrated template: the wheel brings its own
        env = _clean_env(DATABASE_URL=with_database(server_dsn, name), SALESPULSE_DATA_DIR=str(tmp_path / "data"))
        proc = await asyncio.create_subprocess_exec(str(venv / "bin" / "salespulse"), "migrate", cwd=tmp_path, env=env,
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        text = out.decode(errors="replace")
        assert proc.returncode == 0, text
        shipped = len([n for n in _shipped_sources() if n.endswith(".sql")])
        assert f"applied {shipped} migration(s)" in text, text
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _get(url: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def test_salespulse_demo_from_the_wheel_serves_health_and_the_feed_page(installed: tuple[Path, Path],
                                                                       tmp_path: Path) -> None:
    """`salespulse demo` from the venv, with no Slack or Stripe settings, answers /healthz, / and its static files.

    The demo always runs its own embedded PostgreSQL in SALESPULSE_DATA_DIR (it ignores DATABASE_URL, so a real
    store is never touched): its fresh database is migrated and seeded from what the wheel carries.
    """
    venv, _ = installed
    port, log = _free_port(), tmp_path / "demo.log"
    env = _clean_env(HOST="127.0.0.1", PORT=str(port), SALESPULSE_DATA_DIR=str(tmp_path / "data"))
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(venv / "bin" / "salespulse"), "demo"], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        status = 0
        while status != 200:
            assert proc.poll() is None, f"demo exited {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}"
            assert time.monotonic() < deadline, f"no 200 from /healthz in {STARTUP_SECONDS} s:\n" \
                                                f"{log.read_text(errors='replace')[-4000:]}"
            with contextlib.suppress(OSError):
                status = _get(f"{base}/healthz")[0]
            if status != 200:
                time.sleep(0.5)
        status, kind, page = _get(f"{base}/")
        assert status == 200 and kind.startswith("text/html"), (status, kind, page[:500])
        assets = re.findall(rb'(?:href|src)="(/[^"]+\.(?:css|js)(?:\?[^"]*)?)"', page)
        assert len(assets) >= 2, page[:2000]
        for asset in assets:
            status, kind, body = _get(base + asset.decode())
            assert status == 200 and body, (asset, status)
            assert kind.startswith("text/css" if b".css" in asset else "text/javascript"), (asset, kind)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]

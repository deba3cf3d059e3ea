"""The package as an operator installs it: ``python -m build`` (the sdist, then the wheel made from it),
the wheel installed into a fresh virtualenv outside the checkout, ``diemcau serve`` started from
there. Every page and /healthz answer, and a WHIP publish reaches a WHEP subscriber through it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.clip import test_clip
from bench.server_process import ROOT, ServerProcess
from bench.whip_publisher import publish
from tests.support.peers import subscribe

pytestmark = pytest.mark.slow  # builds and installs the package: about a minute

PAGES = sorted(p.relative_to(ROOT / "web_client").as_posix() for p in (ROOT / "web_client").rglob("*") if p.is_file())
BUILD_TIMEOUT = 600  # the build's isolated environment and the install come from pip's cache or the registry


# Bytecode is written in the fresh environment (installed with --no-compile): each module is compiled
# once, by the first command that imports it, instead of by every command.
WRITE_BYTECODE = {"PYTHONDONTWRITEBYTECODE": ""}


def run(*command: str | Path, cwd: Path) -> str:
    """Runs a command outside the checkout, without this environment's PYTHONPATH or server settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("DIEMCAU_")}
    env.update(WRITE_BYTECODE)
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT, env=env)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=out)
    [built] = out.glob("diemcau-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel and its dependencies (the tested versions: constraints.txt).
    --no-compile: byte-compiling every module of every dependency would double the install's time."""
    target = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", target, cwd=target)
    run(sys.executable, "-m", "pip", "--python", target / "bin" / "python", "install", "--quiet", "--no-compile",
        "-c", ROOT / "constraints.txt", wheel, cwd=target)
    return target


@pytest.fixture(scope="module")
def installed_server(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("installed-server")
    server = ServerProcess(home / "data", command=[str(venv / "bin" / "diemcau"), "serve"], cwd=home,
                           env={"DIEMCAU_WORKERS": "1", "PYTHONPATH": "", **WRITE_BYTECODE})
    with server:
        yield server


def test_wheel_holds_pages_migrations_and_the_c_loop(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"server/web_client/{page}" for page in PAGES} <= names
    assert "server/db/alembic.ini" in names and "server/db/migrations/env.py" in names
    migrations = {p.name for p in (ROOT / "server/db/migrations/versions").glob("*.py")}
    assert {f"server/db/migrations/versions/{m}" for m in migrations} <= names
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if shutil.which("cc") and headers.exists():  # without them the build skips it; the Python loop forwards
        assert any(n.startswith("media/native/_fastpath") and n.endswith(".so") for n in names), sorted(names)


def test_installed_commands(venv: Path, tmp_path: Path) -> None:
    version = run(venv / "bin" / "diemcau", "--version", cwd=tmp_path).strip()
    assert version == "diemcau 0.1.0"
    probe = "import media.native._fastpath, server; print(server.__file__)"
    assert run(venv / "bin" / "python", "-c", probe, cwd=tmp_path).startswith(str(venv))
    migrated = run(venv / "bin" / "diemcau", "migrate", cwd=tmp_path)
    assert "newest schema" in migrated and (tmp_path / "data" / "diemcau.db").is_file()


def test_installed_server_serves_every_page(installed_server: ServerProcess) -> None:
    with httpx.Client(base_url=installed_server.url, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        missing = {page: r.status_code for page in PAGES if (r := client.get(f"/{page}")).status_code != 200}
    assert not missing


async def test_installed_server_relays(installed_server: ServerProcess) -> None:
    server = installed_server
    conf = server.create_conference()
    publisher = await publish(server.url, conf, server.token(conf, "speaker"), test_clip())
    subscriber = await subscribe(server.url, conf, server.token(conf, "point"))
    try:
        assert await subscriber.wait_frames(30, timeout=30), f"only {subscriber.frames} frames"
        assert subscriber.location.startswith(f"{server.url}/whep/{conf}/")
    finally:
        await subscriber.close()
        await publisher.close()

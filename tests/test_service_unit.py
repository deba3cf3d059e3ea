"""config/diemcau.service: what the operator installs is a unit systemd accepts, with the parts the
deployment relies on (a dedicated user, its data dir, restart on failure, enough file descriptors,
the environment file)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.server_process import ROOT

UNIT = ROOT / "config" / "diemcau.service"
INSTALLED_COMMAND = "/opt/diemcau/bin/diemcau"  # where docs/deploy.md installs the package


def settings(text: str) -> dict[str, str]:
    """``Key=value`` lines of the unit (comments and section headers left out; the last one wins)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_unit_runs_the_server_as_a_dedicated_user_with_its_data_dir() -> None:
    unit = settings(UNIT.read_text())
    assert unit["User"] == "diemcau" and unit["Group"] == "diemcau"
    assert unit["ExecStart"] == f"{INSTALLED_COMMAND} serve"
    assert unit["StateDirectory"] == "diemcau" and unit["WorkingDirectory"] == "/var/lib/diemcau"
    assert unit["Environment"] == "DIEMCAU_DATA_DIR=/var/lib/diemcau"
    assert unit["EnvironmentFile"].lstrip("-") == "/etc/diemcau/diemcau.env"
    assert unit["Restart"] == "on-failure"
    assert int(unit["LimitNOFILE"]) >= 65536
    assert unit["KillSignal"] == "SIGINT"  # the server's graceful stop
    assert unit["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (no systemd)")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify`` with ExecStart pointed at this environment's ``diemcau`` (it checks
    that the command exists); a value systemd cannot parse is only a warning there, so none may appear."""
    command = Path(sys.executable).parent / "diemcau"
    assert command.exists()
    text = UNIT.read_text()
    assert INSTALLED_COMMAND in text
    unit = tmp_path / "diemcau.service"
    unit.write_text(text.replace(INSTALLED_COMMAND, str(command)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    complaints = [line for line in done.stderr.splitlines() if "diemcau.service" in line]
    assert not complaints, complaints

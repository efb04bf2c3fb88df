"""The local cloud's own error paths, each a single actionable line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from disa.common.errors import UserError
from disa.local_cloud.engine import LocalCloud
from tests.support.net import free_port

pytestmark = pytest.mark.cli
ROOT = Path(__file__).resolve().parents[2]


def _fake_engine(tmp_path: Path, script: str) -> Path:
    """An engine environment whose python runs ``script`` instead of ministack."""
    venv = tmp_path / "engine-venv"
    (venv / "bin").mkdir(parents=True)
    LocalCloud(venv=venv).install_marker.touch()
    python = venv / "bin" / "python"
    python.write_text(f"#!/bin/sh\n{script}\n")
    python.chmod(0o755)
    return venv


def test_a_taken_port_is_named_with_what_to_do(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cloud = LocalCloud(home=tmp_path / "home", port=port, venv=_fake_engine(tmp_path, "sleep 30"))
        with pytest.raises(UserError, match=rf"^port {port} is taken by another program; .*DISA_LOCAL_PORT"):
            cloud.up()


def test_an_engine_that_exits_at_start_shows_its_last_log_lines(tmp_path):
    venv = _fake_engine(tmp_path, "echo 'engine: cannot open state dir' >&2; exit 3")
    cloud = LocalCloud(home=tmp_path / "home", port=free_port(), venv=venv)
    with pytest.raises(UserError, match=r"exited at start \(code 3\); last log lines: engine: cannot open state dir"):
        cloud.up()
    assert cloud.pid() is None


def test_down_when_nothing_runs_says_so(tmp_path):
    assert LocalCloud(home=tmp_path / "home", port=free_port()).down() is False


def test_local_commands_without_a_running_engine_say_how_to_start_it(tmp_path):
    env = {**os.environ, "DISA_LOCAL_PORT": str(free_port())}
    result = subprocess.run(
        [sys.executable, "-m", "disa", "status", "--local"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == "disa: the local cloud is not running; start it with `disa local up`\n"

"""The local cloud's own error paths, each a single actionable line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from disa.common.errors import UserError
from disa.local_cloud import engine
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


def test_one_engine_per_checkout_a_second_port_is_refused_not_started_over_it(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    running = subprocess.Popen(["sleep", "30"])  # stands in for this checkout's engine
    try:
        first = LocalCloud(home=home, port=free_port(), venv=_fake_engine(tmp_path, "exit 9"))
        first.pid_file.write_text(str(running.pid))
        first.port_file.write_text(str(first.port))
        other = LocalCloud(home=home, port=free_port(), venv=first.venv)
        with pytest.raises(UserError, match=rf"already runs on port {first.port} \(pid {running.pid}\); use that port"):
            other.up()
        with pytest.raises(UserError, match=r"does not answer on port .*`disa local down`"):
            first.up()  # its own port, but silent: not a reason to start another
        assert first.pid() == running.pid  # nothing was started over it
    finally:
        running.kill()
        running.wait()


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


def _package_under_a_checkout(tmp_path: Path) -> Path:
    """A site-packages folder inside a git checkout, as .local-cloud/engine-venv is."""
    checkout = tmp_path / "checkout"
    site_packages = checkout / ".local-cloud" / "lib" / "site-packages"
    (site_packages / "engine").mkdir(parents=True)
    (site_packages / "engine" / "core.py").write_text("def answer():\n    return 41\n")
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    return site_packages


PATCH = """Subject: the right answer

What AWS does: answers 42.
diff --git a/engine/core.py b/engine/core.py
--- a/engine/core.py
+++ b/engine/core.py
@@ -1,2 +1,2 @@
 def answer():
-    return 41
+    return 42
"""


def test_every_shipped_engine_patch_says_what_it_fixes_and_why():
    patches = engine.engine_patches()
    assert [p.name[:4] for p in patches] == [f"{n:04d}" for n in range(1, len(patches) + 1)], "numbered in order"
    for patch in patches:
        header = patch.read_text().split("diff --git", 1)[0]
        for part in ("Subject:", "What AWS does:", "What ministack 1.5.33 did:", "What Disa depends on it for:"):
            assert part in header, f"{patch.name} lacks {part!r}"


def test_a_patch_applies_to_the_engine_and_not_to_the_checkout_around_it(tmp_path):
    site_packages = _package_under_a_checkout(tmp_path)
    (tmp_path / "0001-answer.patch").write_text(PATCH)

    engine.apply_patch(tmp_path / "0001-answer.patch", site_packages)

    assert "return 42" in (site_packages / "engine" / "core.py").read_text()


def test_a_patch_that_no_longer_applies_names_itself_and_what_to_do(tmp_path):
    site_packages = _package_under_a_checkout(tmp_path)
    (site_packages / "engine" / "core.py").write_text("def answer():\n    return 40\n")  # a newer engine
    (tmp_path / "0001-answer.patch").write_text(PATCH)

    with pytest.raises(UserError, match=r"^engine patch 0001-answer.patch does not apply to the ministack pinned .*; "):
        engine.apply_patch(tmp_path / "0001-answer.patch", site_packages)
    assert "return 40" in (site_packages / "engine" / "core.py").read_text(), "nothing half-applied"


def test_changing_a_patch_reinstalls_the_engine(tmp_path):
    patch = tmp_path / "0001-answer.patch"
    patch.write_text(PATCH)
    before = LocalCloud(venv=tmp_path / "venv", patches=(patch,)).install_marker
    patch.write_text(PATCH.replace("42", "43"))
    assert LocalCloud(venv=tmp_path / "venv", patches=(patch,)).install_marker != before

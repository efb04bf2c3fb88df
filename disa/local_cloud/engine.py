"""The embedded local cloud: ministack, pinned in requirements/engine.lock, installed in its
own virtual environment (it pins botocore exactly), patched where it hides what Disa does
on AWS (patches/, applied in name order; docs/engine-differences.md), and run as a
separate process on loopback, with private state, temp and log folders under .local-cloud/
(git-ignored).

State survives `down` then `up`: the engine saves it on a clean shutdown (SIGTERM). After
a crash (SIGKILL, power loss) only S3 objects survive; `up` then starts empty.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from disa.common import paths
from disa.common.aws import Clients, Target
from disa.common.console import progress
from disa.common.errors import UserError

HOME = paths.ROOT / ".local-cloud"
ENGINE_LOCK = paths.ROOT / "requirements" / "engine.lock"
PATCHES = Path(__file__).parent / "patches"
DEFAULT_PORT = 4599
REGION = "us-east-1"
# The engine accepts any well-formed credentials; these keep a developer's real AWS
# credentials out of every local call.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 20


@dataclass(frozen=True)
class LocalCloud:
    """``home`` holds the state, temp files, log and pid file; ``venv`` the installed
    engine, which several homes (the tests' private ones) can share."""

    home: Path = HOME
    port: int = field(default_factory=lambda: int(os.environ.get("DISA_LOCAL_PORT", DEFAULT_PORT)))
    venv: Path = HOME / "engine-venv"
    patches: tuple[Path, ...] = field(default_factory=lambda: engine_patches())

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "engine.pid"

    @property
    def port_file(self) -> Path:
        """The port the running engine of this home listens on (another DISA_LOCAL_PORT must
        not start a second engine over the same pid file)."""
        return self.home / "engine.port"

    @property
    def log_file(self) -> Path:
        return self.home / "engine.log"

    @property
    def fault_snapshots(self) -> Path:
        """Where an SNS outage keeps a removed topic until it is restored (drills/faults.py)."""
        return self.home / "faults"

    @property
    def install_marker(self) -> Path:
        """Present once the engine of requirements/engine.lock, with the patches as they are
        now, is installed."""
        return self.venv / f".installed-{_digest(ENGINE_LOCK, *self.patches)}"

    # -- installation -------------------------------------------------------------------
    def install(self) -> None:
        marker = self.install_marker
        if marker.exists():
            return
        self.venv.parent.mkdir(parents=True, exist_ok=True)
        progress(f"installing the local cloud engine into {self.venv} (once)")
        shutil.rmtree(self.venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(self.venv)], "create the engine's virtual environment")
        _run(
            [
                str(self.venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "-r",
                str(ENGINE_LOCK),
            ],
            "install the engine (requirements/engine.lock)",
        )
        try:
            for patch in self.patches:
                apply_patch(patch, self.site_packages())
        except UserError:
            shutil.rmtree(self.venv, ignore_errors=True)  # never leave a half-patched engine
            raise
        marker.touch()

    def site_packages(self) -> Path:
        [found] = (self.venv / "lib").glob("python3.*/site-packages")
        return found

    # -- lifecycle ------------------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/_ministack/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def up(self) -> bool:
        """Start the engine unless it runs; returns True if it was started now. One engine per
        home: one running on another port, or not answering, is an error to act on."""
        running = self.pid()
        if running:
            port = self.running_port()
            if port is not None and port != self.port:
                raise UserError(
                    f"this checkout's local cloud already runs on port {port} (pid {running}); use that port "
                    f"(DISA_LOCAL_PORT={port}) or stop it first with `disa local down`"
                )
            if self.healthy():
                return False
            raise UserError(
                f"this checkout's local cloud (pid {running}) does not answer on port {self.port}; "
                "stop it with `disa local down` and start it again"
            )
        self.install()
        if _port_taken(self.port):
            raise UserError(
                f"port {self.port} is taken by another program; stop it or choose another port with DISA_LOCAL_PORT"
            )
        for folder in ("state", "s3", "tmp"):
            (self.home / folder).mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **CREDENTIALS,
            "GATEWAY_PORT": str(self.port),
            "BIND_HOST": "127.0.0.1",
            "LAMBDA_EXECUTOR": "local",
            "PERSIST_STATE": "1",
            "STATE_DIR": str(self.home / "state"),
            "S3_PERSIST": "1",
            "S3_DATA_DIR": str(self.home / "s3"),
            # The engine writes its pid file and Lambda worker folders into TMPDIR.
            "TMPDIR": str(self.home / "tmp"),
            "AWS_DEFAULT_REGION": REGION,
        }
        env.pop("AWS_ENDPOINT_URL", None)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [str(self.venv / "bin" / "python"), "-m", "ministack"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.home,
                start_new_session=True,  # its own process group: `down` reaps its workers
            )
        self.pid_file.write_text(str(process.pid))
        self.port_file.write_text(str(self.port))
        deadline = time.time() + START_TIMEOUT_SECONDS
        while time.time() < deadline:
            if process.poll() is not None:
                raise UserError(
                    f"the local cloud engine exited at start (code {process.returncode}); "
                    f"last log lines: {self.last_log_lines()}"
                )
            if self.healthy():
                return True
            time.sleep(0.2)
        self.down()
        raise UserError(
            f"the local cloud engine did not answer within {START_TIMEOUT_SECONDS}s; "
            f"last log lines: {self.last_log_lines()}"
        )

    def down(self) -> bool:
        """Stop the engine and every process it started; returns False if none ran."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            self.port_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)  # a clean shutdown saves the state
        deadline = time.time() + STOP_TIMEOUT_SECONDS
        while time.time() < deadline and _alive(pid):
            time.sleep(0.1)
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)  # Lambda workers left in the engine's group
        self.pid_file.unlink(missing_ok=True)
        self.port_file.unlink(missing_ok=True)
        return True

    def running_port(self) -> int | None:
        try:
            return int(self.port_file.read_text())
        except (OSError, ValueError):
            return None

    def processes(self) -> list[int]:
        """Pids of the engine's process group (engine and Lambda workers)."""
        pid = self.pid()
        if pid is None:
            return []
        group = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == pid:
                        group.append(int(entry.name))
                except OSError:
                    continue
        return sorted(group)

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {
            "running": bool(pid) and self.healthy(),
            "pid": pid,
            "endpoint": self.endpoint,
            "processes": len(self.processes()),
            "state": str(self.home / "state"),
            "log": str(self.log_file),
        }

    def last_log_lines(self, count: int = 5) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-count:]) or "(empty log)"

    def require_running(self) -> None:
        if not self.healthy():
            raise UserError("the local cloud is not running; start it with `disa local up`")

    def clients(self) -> Clients:
        """Clients for this engine. Local calls never use, or leak, the developer's real
        AWS credentials: the process takes the engine's throwaway ones and drops any profile."""
        os.environ.update({k: v for k, v in self.environment().items() if k != "AWS_ENDPOINT_URL"})
        os.environ.pop("AWS_PROFILE", None)
        return Clients(Target(region=REGION, endpoint_url=self.endpoint))

    def environment(self) -> dict[str, str]:
        """What a client needs to talk to the local cloud."""
        return {**CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_ENDPOINT_URL": self.endpoint}


def _port_taken(port: int) -> bool:
    """True if something listens on the port (connections left in TIME_WAIT by a stopped
    engine do not count, as they do not for the engine's own bind)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return ""


def engine_patches() -> tuple[Path, ...]:
    return tuple(sorted(PATCHES.glob("*.patch")))


def apply_patch(patch: Path, site_packages: Path) -> None:
    """``git apply`` as a stand-in for patch(1): git is on every machine Disa supports. The
    ceiling keeps git from taking an enclosing checkout for the tree to patch."""
    if shutil.which("git") is None:
        raise UserError("git is needed to patch the local cloud engine; install git and run again")
    result = subprocess.run(
        ["git", "apply", "-p1", "--whitespace=nowarn", str(patch)],
        cwd=site_packages,
        env={**os.environ, "GIT_CEILING_DIRECTORIES": str(site_packages.parent)},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()[:1] or ["no output"]
        raise UserError(
            f"engine patch {patch.name} does not apply to the ministack pinned in requirements/engine.lock "
            f"({reason[0]}); update the patch or the pin"
        )


def _digest(*files: Path) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"could not {what}: {tail[0]}")

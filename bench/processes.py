"""Child processes of the benchmark: start, wait until ready, measure and stop.

Every child gets its own session, so a Ctrl-C in the terminal reaches only
the benchmark, which then stops the children in reverse order by pid. Linux
also sends each child SIGTERM if the benchmark process dies first.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
# prctl option from <linux/prctl.h>: the signal a child gets when its parent dies.
PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_SECONDS = 15.0


class ChildFailed(RuntimeError):
    """A child process exited early or did not become ready in time."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One process started by the benchmark, with its log file."""

    def __init__(
        self, name: str, process: subprocess.Popen[bytes], log_path: Path
    ) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def rss_kib(self) -> int:
        """Read the resident set size (VmRSS) in KiB from /proc."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise ChildFailed(f"{self.name}: no VmRSS line in /proc/{self.pid}/status")

    def cpu_seconds(self) -> float:
        """Read the user plus system CPU time the process has used so far."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        # The command name is in parentheses and may contain spaces, so the
        # fields are counted from the last ")". utime and stime are fields 14, 15.
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_running(self) -> None:
        if not self.running():
            raise ChildFailed(
                f"{self.name} exited with status {self.process.returncode}; "
                f"last lines of {self.log_path}:\n{self.log_tail()}"
            )

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Send SIGTERM, wait up to `timeout` seconds, then SIGKILL."""
        if not self.running():
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class Children:
    """Every process the benchmark started; leaving the block stops them all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._children: list[Child] = []

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        child = Child(name, process, log_path)
        self._children.append(child)
        return child

    def __iter__(self) -> Iterator[Child]:
        return iter(list(self._children))

    def stop_all(self) -> None:
        while self._children:
            self._children.pop().stop()

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()


def wait_until(
    child: Child,
    ready: Callable[[], bool],
    *,
    timeout: float,
    description: str,
) -> None:
    """Poll `ready` until it returns True, and fail early if the child exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check_running()
        if ready():
            return
        time.sleep(0.02)
    raise ChildFailed(
        f"{child.name}: {description} not ready after {timeout:.0f} s; "
        f"last lines of {child.log_path}:\n{child.log_tail()}"
    )


def accepts_connections(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    return probe


def redis_answers_ping(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return probe


def read_json_file(path: Path) -> Callable[[], bool]:
    """Return a probe that is true once `path` contains a complete JSON document."""

    def probe() -> bool:
        try:
            json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        return True

    return probe


def start_redis(
    children: Children, executable: str, data_dir: Path
) -> tuple[Child, str]:
    """Start redis-server on 127.0.0.1 without persistence.

    Returns the child and the redis:// URL to reach it.
    """
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        executable,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--protected-mode", "yes",
        "--dir", str(data_dir),
    ]  # fmt: skip
    child = children.start("redis", argv)
    wait_until(child, redis_answers_ping(port), timeout=10, description="redis-server")
    return child, f"redis://127.0.0.1:{port}/0"


def clean_environment(extra: dict[str, Any]) -> dict[str, str]:
    """Copy the environment without any bot or Slack setting, then add `extra`.

    An inherited SLACK_APP_TOKEN, for example, would switch the bot to Socket
    Mode, so every setting the bench relies on comes from `extra` alone.
    """
    dropped_prefixes = ("SLACK_", "NORTHFLANK_", "BOT_")
    dropped_names = {"REDIS_URL", "HOST", "PORT", "LOG_LEVEL"}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(dropped_prefixes) and name not in dropped_names
    }
    env.update({name: str(value) for name, value in extra.items()})
    return env

"""Load generation with wrk: signed Slack bodies in a generated Lua script."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bot.signing import sign

LUA_SCRIPT = Path(__file__).with_name("signed_requests.lua")
SLACK_EVENTS_PATH = "/slack/events"
# Bytes that may stand unescaped in a Lua string literal. Every other byte is
# written as a three-digit decimal escape.
_LUA_PLAIN = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%&=+-_.~*/:,()!@ "
)
INSTALL_HINT = (
    "wrk is not installed; the benchmark drives its load with it. Install it "
    "with `apt-get update && apt-get install -y wrk` (Debian and Ubuntu) or "
    "`brew install wrk` (macOS), then run `make bench` again."
)


class LoadFailed(RuntimeError):
    """wrk failed or printed no result line."""


@dataclass(frozen=True)
class LoadResult:
    """One wrk run: completed requests, latency percentiles and errors."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    status_errors: int

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.status_errors


def find_wrk() -> str | None:
    return shutil.which("wrk")


def wrk_version(wrk: str) -> str:
    """Return wrk's version line, such as `wrk debian/4.1.0-3+b2 [epoll]`."""
    # wrk prints its version with the usage text and exits with status 1.
    result = subprocess.run([wrk, "--version"], capture_output=True, text=True)
    first = (result.stdout or result.stderr).splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "wrk"


def lua_string(data: bytes) -> str:
    return (
        '"' + "".join(chr(b) if b in _LUA_PLAIN else f"\\{b:03d}" for b in data) + '"'
    )


def write_script(path: Path, secret: str, bodies: list[bytes], quota: int) -> None:
    """Write the wrk script with each body signed at the current time."""
    timestamp = str(int(time.time()))
    lines = ["bench_requests = {"]
    for body in bodies:
        signature = sign(secret, timestamp, body).encode()
        fields = [
            f"body = {lua_string(body)}",
            f"timestamp = {lua_string(timestamp.encode())}",
            f"signature = {lua_string(signature)}",
        ]
        lines.append("  {" + ", ".join(fields) + "},")
    lines.append("}")
    lines.append(f"bench_quota = {quota}")
    path.write_text("\n".join(lines) + "\n\n" + LUA_SCRIPT.read_text())


def run_wrk(
    wrk: str,
    port: int,
    secret: str,
    bodies: list[bytes],
    *,
    connections: int,
    seconds: int,
    script_path: Path,
    quota: int = 0,
) -> LoadResult:
    """Send the bodies in turn to 127.0.0.1:`port` for `seconds` seconds.

    With a quota, wrk stops after that many responses instead: the script
    prints a marker, and this function interrupts wrk, which then prints its
    result as usual. One wrk thread drives every connection, which leaves
    the second core of a two-core machine to the server.
    """
    write_script(script_path, secret, bodies, quota)
    argv = [
        wrk,
        "--threads", "1",
        "--connections", str(connections),
        "--duration", f"{seconds}s",
        "--timeout", "5s",
        "--script", str(script_path),
        f"http://127.0.0.1:{port}{SLACK_EVENTS_PATH}",
    ]  # fmt: skip
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if line.startswith("BENCH_QUOTA"):
                process.send_signal(signal.SIGINT)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return _parse_result("".join(output), process.returncode)


def _parse_result(output: str, returncode: int) -> LoadResult:
    for line in output.splitlines():
        if line.startswith("BENCH_RESULT "):
            data = json.loads(line.removeprefix("BENCH_RESULT "))
            break
    else:
        raise LoadFailed(
            f"wrk exited with status {returncode} and no result:\n{output}"
        )
    socket_errors = sum(
        int(data[name])
        for name in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return LoadResult(
        requests=int(data["requests"]),
        seconds=int(data["duration_us"]) / 1e6,
        p50_ms=int(data["p50_us"]) / 1000,
        p90_ms=int(data["p90_us"]) / 1000,
        p99_ms=int(data["p99_us"]) / 1000,
        max_ms=int(data["max_us"]) / 1000,
        socket_errors=socket_errors,
        status_errors=int(data["status_errors"]),
    )

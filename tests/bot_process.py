"""`python -m bot serve` as a real child process, for replica and signal tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.redis_process import free_port


class BotSubprocess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_url(self) -> str:
        return self.url + "/slack/events"

    async def start(self, timeout: float = 30.0) -> None:
        log = self.log_path.open("wb")
        environ = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "NORTHFLANK_", "BOT_", "REDIS_"))
        }
        environ.update(self.env)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"], env=environ, stdout=log, stderr=log
        )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"bot exited: {self.log()}")
                try:
                    response = await client.get(self.url + "/healthz", timeout=1.0)
                    if response.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"bot did not start: {self.log()}")

    async def health(self) -> dict[str, object]:
        async with httpx.AsyncClient() as client:
            response = await client.get(self.url + "/healthz", timeout=2.0)
        body: dict[str, object] = response.json()
        return body

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError("bot did not exit")
            await asyncio.sleep(0.05)
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

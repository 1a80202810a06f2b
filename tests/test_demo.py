"""`python -m bot demo` runs the whole incident and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_plays_incident(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLACK_", "NORTHFLANK_", "REDIS_"))
    }
    env.update({"BOT_DATA_DIR": str(tmp_path / "data"), "HOST": "127.0.0.1"})

    result = subprocess.run(
        [sys.executable, "-m", "bot", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "TEMPLATE RUN ABORTING" in out
    assert "TEMPLATE RUN ABORTED" in out
    assert out.index("TEMPLATE RUN ABORTING") < out.index("TEMPLATE RUN ABORTED")
    assert ":arrow_forward: running" in out
    assert "Aborted by: @alice" in out
    assert "only visible to @bob" in out
    assert "You need the permission `Account > Templates > Runs > Abort`" in out
    assert "already aborting, started by @alice" in out
    assert "Northflank received 1 abort request(s)" in out
    assert "Traceback" not in result.stderr

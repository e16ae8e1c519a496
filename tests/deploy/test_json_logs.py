"""`LOG_FORMAT=json`: every line a real `storekeeper serve` writes is one JSON object, the
server's own (uvicorn's) lines included."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

STOREKEEPER = str(Path(sys.executable).with_name("storekeeper"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.system
def test_serve_writes_only_json_lines(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "STOREKEEPER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'logs.db'}",
        "STOREKEEPER_ENV": "test",
        "STOREKEEPER_LOG_FORMAT": "json",
        "STOREKEEPER_LOG_LEVEL": "INFO",
        "STOREKEEPER_RUN_BACKGROUND_TASKS": "false",
    }
    subprocess.run([STOREKEEPER, "db", "upgrade"], env=env, check=True, capture_output=True)
    port = _free_port()
    output = tmp_path / "serve.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [STOREKEEPER, "serve", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, output.read_text()
                time.sleep(0.2)
            assert httpx.get(f"http://127.0.0.1:{port}/nope").status_code == 404
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)

    lines = output.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all(isinstance(record, dict) for record in records)
    by_logger = {(r.get("logger"), r["event"]) for r in records}
    assert ("uvicorn.error", "Application startup complete.") in by_logger
    running = f"Uvicorn running on http://127.0.0.1:{port} (Press CTRL+C to quit)"
    assert ("uvicorn.error", running) in by_logger
    assert ("uvicorn.error", "Shutting down") in by_logger
    assert ("uvicorn.error", "Application shutdown complete.") in by_logger
    assert (None, "started") in by_logger and (None, "stopped") in by_logger
    # uvicorn's access log stays off (`serve` runs it with access_log=False): the service's
    # own access line is the one per request.
    assert [r for r in records if r.get("logger") == "uvicorn.access"] == []
    requests = [r for r in records if r["event"] == "request"]
    assert [(r["path"], r["status"]) for r in requests] == [("/health", 200), ("/nope", 404)]
    assert all(r["level"] in {"info", "warning", "error"} and "timestamp" in r for r in records)

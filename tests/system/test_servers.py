"""The system harness itself: two server processes share one database."""

from __future__ import annotations

import httpx

from tests.system.conftest import ServerRunner


async def test_two_servers_answer(run_servers: ServerRunner, staff_headers: dict[str, str]) -> None:
    async with run_servers(count=2) as cluster, httpx.AsyncClient() as client:
        for url in cluster.urls:
            ready = await client.get(f"{url}/health/ready")
            assert ready.status_code == 200
            report = await client.get(f"{url}/api/v1/inventory/consistency", headers=staff_headers)
            assert report.status_code == 200
            assert report.json()["is_consistent"] is True
            assert report.json()["issues"] == []

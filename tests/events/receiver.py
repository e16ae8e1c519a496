"""A real HTTP receiver for webhook tests: a tiny HTTP/1.1 server on 127.0.0.1.

Each path answers from its plan, in order (`plan("/hook", 500, 500, 200)`), then with its
fallback (`otherwise["/hook"]`, 200 unless set). An answer is a status code, `"hang"`
(accept the request and never answer) or `("slow", seconds, status)`. Every request is
kept with its headers, body and arrival time, and how many were in flight at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus

Answer = int | str | tuple[str, float, int]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.plans: dict[str, list[Answer]] = {}
        self.otherwise: dict[str, Answer] = {}
        self.active: Counter[str] = Counter()
        self.most_active: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._arrived = asyncio.Condition()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def plan(self, path: str, *answers: Answer) -> None:
        self.plans[path] = list(answers)

    def at(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]

    async def wait_for(self, path: str, count: int, within: float = 2.0) -> list[Received]:
        """The requests to `path` once there are `count` of them (at most `within` s)."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.at(path)) >= count)
        return self.at(path)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode("latin-1").strip()
        if not request_line:
            return
        method, target, _version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            line = (await reader.readline()).decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        received = Received(method, target, headers, body, asyncio.get_running_loop().time())
        self.active[target] += 1
        self.most_active[target] = max(self.most_active[target], self.active[target])
        try:
            async with self._arrived:
                self.requests.append(received)
                self._arrived.notify_all()
            plan = self.plans.get(target)
            answer = plan.pop(0) if plan else self.otherwise.get(target, 200)
            if answer == "hang":
                await asyncio.sleep(3600)
                return
            if isinstance(answer, tuple):
                _slow, seconds, answer = answer
                await asyncio.sleep(seconds)
            assert isinstance(answer, int)
            text = f"answer {answer}".encode()
            writer.write(
                f"HTTP/1.1 {answer} {HTTPStatus(answer).phrase}\r\n"
                f"Content-Type: text/plain\r\nContent-Length: {len(text)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + text
            )
            await writer.drain()
        finally:
            self.active[target] -= 1

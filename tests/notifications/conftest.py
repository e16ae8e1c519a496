"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives, and settings
that send to it quickly."""

from __future__ import annotations

import asyncio
import email
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from storekeeper.config import Settings
from tests.orders.conftest import make_sku  # noqa: F401  (priced SKUs with stock)
from tests.web.conftest import sign_in  # noqa: F401  (signing in to the staff pages)

USERNAME = "mailer"
PASSWORD = "s3cret:/@"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SmtpServer:
    """Listens on a fixed port that it may stop and start again (the server going down and
    coming back)."""

    def __init__(self, *, require_login: bool = False) -> None:
        self.port = _free_port()
        self.received: list[Received] = []
        self.require_login = require_login
        self.arrived = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if session.auth_data else None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, login))
        self.arrived.set()
        return "250 Message accepted for delivery"

    def _authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == USERNAME
            and data.password.decode() == PASSWORD
        )
        return AuthResult(success=ok, auth_data=data if ok else None)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(
                self,
                hostname="storekeeper-test",
                authenticator=self._authenticate,
                auth_required=self.require_login,
                auth_require_tls=False,
            ),
            "127.0.0.1",
            self.port,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    server = SmtpServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def mail(settings: Settings, smtp_server: SmtpServer) -> Settings:
    """Settings that send to the test server, with no waiting between attempts."""
    settings.smtp_url = smtp_server.url
    settings.webhook_retry_schedule = [0, 0]
    settings.smtp_timeout_seconds = 2.0
    settings.events_interval_seconds = 0.05
    return settings

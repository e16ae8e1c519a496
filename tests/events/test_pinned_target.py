"""A webhook attempt goes to the address its host was checked at (no DNS rebinding between
the check and the connection), keeping the name for the Host header and TLS."""

from __future__ import annotations

import pytest

from storekeeper.config import Environment, Settings
from storekeeper.events import webhooks
from storekeeper.events.webhooks import Resolved, Target, pinned_target


def _settings(*, allow_private: bool) -> Settings:
    return Settings(
        env=Environment.TEST,
        webhook_allow_private_networks=allow_private,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def resolves_to(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    asked: list[tuple[str, int]] = []
    answers = {"hooks.example.com": "93.184.216.34", "v6.example.com": "2606:2800:220:1::1"}

    async def resolve(host: str, port: int) -> Resolved:
        asked.append((host, port))
        if host in answers:
            return Resolved(answers[host], None)
        return Resolved(None, f"the host {host!r} resolves to a loopback address (127.0.0.1)")

    monkeypatch.setattr(webhooks, "resolve_public", resolve)
    return asked


async def test_an_https_url_is_sent_to_the_checked_address_with_its_name_kept(
    resolves_to: list[tuple[str, int]],
) -> None:
    target = await pinned_target("https://hooks.example.com/in?x=1", _settings(allow_private=False))
    assert target == Target(
        "https://93.184.216.34/in?x=1",
        {"host": "hooks.example.com"},
        {"sni_hostname": "hooks.example.com"},
    )
    assert resolves_to == [("hooks.example.com", 443)]


async def test_a_port_and_an_ipv6_address_are_kept_in_the_pinned_url(
    resolves_to: list[tuple[str, int]],
) -> None:
    target = await pinned_target("http://v6.example.com:8080/hook", _settings(allow_private=False))
    assert target == Target(
        "http://[2606:2800:220:1::1]:8080/hook", {"host": "v6.example.com:8080"}, {}
    )
    assert resolves_to == [("v6.example.com", 8080)]


async def test_a_host_that_now_resolves_to_a_private_address_is_refused(
    resolves_to: list[tuple[str, int]],
) -> None:
    refusal = await pinned_target("https://rebound.example.com/", _settings(allow_private=False))
    assert refusal == "the host 'rebound.example.com' resolves to a loopback address (127.0.0.1)"


async def test_with_private_networks_allowed_the_url_is_sent_as_it_is(
    resolves_to: list[tuple[str, int]],
) -> None:
    target = await pinned_target("http://127.0.0.1:9000/hook", _settings(allow_private=True))
    assert target == Target("http://127.0.0.1:9000/hook", {}, {})
    assert resolves_to == []

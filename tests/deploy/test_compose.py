"""The container files: `compose.yaml` against the Compose Specification's JSON schema and
the services it must describe, `.env.example` against the settings, and the Dockerfile."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft201909Validator

from storekeeper.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
STOREKEEPER_SERVICES = ("migrate", "app", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_file_is_valid_against_the_specification(compose: dict[str, Any]) -> None:
    validator = Draft201909Validator(SCHEMA)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_catches_a_mistake(compose: dict[str, Any]) -> None:
    # The check can fail: a misspelt key and a condition compose does not know are refused.
    broken = json.loads(json.dumps(compose))
    broken["services"]["app"]["helthcheck"] = broken["services"]["app"].pop("healthcheck")
    broken["services"]["worker"]["depends_on"]["migrate"]["condition"] = "service_done"
    messages = [e.message for e in Draft201909Validator(SCHEMA).iter_errors(broken)]
    assert len(messages) == 2, messages


def test_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"migrate", "app", "worker", "postgres", "redis"}
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    assert services["migrate"]["command"] == ["storekeeper", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["app"]["command"] == ["storekeeper", "serve"]
    assert services["worker"]["command"] == ["storekeeper", "worker"]
    assert services["app"]["ports"] == ["${STOREKEEPER_PUBLISHED_PORT:-8000}:8000"]
    for name in STOREKEEPER_SERVICES:
        service = services[name]
        assert service["build"] == "."
        assert service["image"] == "storekeeper:latest"
        assert service["init"] is True
        assert service["env_file"] == ".env"
        environment = service["environment"]
        assert environment["STOREKEEPER_DATABASE_URL"].startswith(
            "postgresql+asyncpg://storekeeper:${POSTGRES_PASSWORD:?"
        )
        assert environment["STOREKEEPER_DATABASE_URL"].endswith("@postgres:5432/storekeeper")
        assert environment["STOREKEEPER_REDIS_URL"] == "redis://redis:6379/0"
    # The app leaves the background jobs and the migration to the worker and `migrate`.
    assert services["app"]["environment"]["STOREKEEPER_RUN_BACKGROUND_TASKS"] == "false"
    assert services["app"]["environment"]["STOREKEEPER_MIGRATE_ON_START"] == "false"
    assert "STOREKEEPER_RUN_BACKGROUND_TASKS" not in services["worker"]["environment"]


def test_the_order_of_start(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("app", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }


def test_the_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["postgres"]["healthcheck"]["test"] == [
        "CMD-SHELL",
        "pg_isready --username=storekeeper --dbname=storekeeper",
    ]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    app_check = services["app"]["healthcheck"]["test"]
    assert app_check[:3] == ["CMD", "python", "-c"]
    assert "http://127.0.0.1:8000/health/ready" in app_check[3]
    # The worker and the one-shot migration serve no HTTP: the image's check is off.
    assert services["worker"]["healthcheck"] == {"disable": True}
    assert services["migrate"]["healthcheck"] == {"disable": True}
    for name in ("app", "postgres", "redis"):
        check = services[name]["healthcheck"]
        assert {"interval", "timeout", "retries"} <= set(check)


def test_the_named_volumes(compose: dict[str, Any]) -> None:
    assert compose["volumes"] == {"postgres-data": None, "redis-data": None}
    assert compose["services"]["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert compose["services"]["redis"]["volumes"] == ["redis-data:/data"]


def _example_lines() -> dict[str, str]:
    """Each variable of .env.example (commented out or not) and its value."""
    found: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.fullmatch(r"#? ?([A-Z][A-Z0-9_]*)=(.*)", line)
        if match:
            found[match[1]] = match[2]
    return found


def test_env_example_lists_every_setting() -> None:
    listed = _example_lines()
    settings = {f"STOREKEEPER_{name.upper()}" for name in Settings.model_fields}
    assert sorted(settings - set(listed)) == []
    # And nothing that is neither a setting nor one of the container's own variables.
    container = {
        "POSTGRES_PASSWORD",
        "STOREKEEPER_PUBLISHED_PORT",
        "STOREKEEPER_DB_WAIT_SECONDS",
        "STOREKEEPER_MIGRATE_ON_START",
        "STOREKEEPER_HOST",
        "STOREKEEPER_PORT",
        "STOREKEEPER_WORKERS",
    }
    assert sorted(set(listed) - settings - container) == []


def test_env_example_is_a_valid_production_configuration(tmp_path: Path) -> None:
    # The lines in force, as the service would read them: production and its secret key.
    settings = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    assert settings.env.value == "production"
    assert len(settings.secret_key or "") >= 32
    # Every commented default is one the settings accept (uncommented all at once).
    uncommented = tmp_path / "all.env"
    lines = [f"{k}={v}" for k, v in _example_lines().items() if v]
    uncommented.write_text("\n".join(lines) + "\n")
    everything = Settings(_env_file=uncommented)  # type: ignore[call-arg]
    assert everything.locking.value == "atomic"
    assert everything.webhook_retry_schedule == [5, 30, 120, 600, 1800, 3600, 7200]


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_is_multi_stage_slim_and_unprivileged() -> None:
    text = _dockerfile()
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, flags=re.MULTILINE)
    assert stages == [
        ("python:${PYTHON_VERSION}-slim", "builder"),
        ("python:${PYTHON_VERSION}-slim", "runtime"),
    ]
    assert "RUN pip wheel --wheel-dir /wheels ." in text
    assert re.search(r"^USER 10001:10001$", text, flags=re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD \[.*/health'", text, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["storekeeper-entrypoint"]' in text
    assert 'CMD ["storekeeper", "serve"]' in text


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run(
        [hadolint, "--failure-threshold", "style", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stdout) == (0, "")

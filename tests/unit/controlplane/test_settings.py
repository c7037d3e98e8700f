"""Settings as a fresh process sees them: production fails fast and passes the deploy check."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from tests.servers import clean_env, run_manage


def _manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py in a clean environment: nothing inherited that configures the app."""
    return run_manage(*args, env=clean_env(tmp_path / "var", **env))


def _production_secret() -> str:
    return secrets.token_urlsafe(40)[:50]


def test_production__no_secret_key__exits_non_zero_naming_secret_key(tmp_path):
    result = _manage(tmp_path, "check", CONTROLPLANE_ENV="production")
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set" in result.stderr
    assert not (tmp_path / "var" / "dev-secret-key").exists()


def _production_deploy_check(tmp_path: Path, **secret: str) -> subprocess.CompletedProcess[str]:
    """``check --deploy`` failing on warnings, in production with a host and ``secret``."""
    return _manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        CONTROLPLANE_ENV="production",
        ALLOWED_HOSTS="cp.example.com",
        **secret,
    )


def test_production__deploy_check_with_secret_and_hosts__no_warnings(tmp_path):
    result = _production_deploy_check(tmp_path, SECRET_KEY=_production_secret())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production__secret_key_from_file__deploy_check_passes(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text(_production_secret() + "\n", encoding="utf-8")
    result = _production_deploy_check(tmp_path, SECRET_KEY_FILE=str(key_file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"DEBUG": "ture"}, "DEBUG='ture' is not a boolean"),
        (
            {"SECURE_SSL_REDIRECT": "yes please"},
            "SECURE_SSL_REDIRECT='yes please' is not a boolean",
        ),
        ({"CONTROLPLANE_ENV": "staging"}, "CONTROLPLANE_ENV='staging' must be one of"),
        ({"DATABASE_URL": "mysql://app:hunter2@db/cp"}, "DATABASE_URL='mysql://app:***@db/cp'"),
        ({"REDIS_URL": "http://:hunter2@cache:6379/0"}, "REDIS_URL='http://:***@cache:6379/0'"),
    ],
)
def test_startup__malformed_variable__exits_non_zero_naming_it_without_secrets(
    tmp_path, env, fragment
):
    result = _manage(tmp_path, "check", **env)
    assert result.returncode != 0
    assert fragment in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_production__debug_off_and_secure_cookies_by_default(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS > 0, s.ALLOWED_HOSTS)"
    )
    result = _manage(
        tmp_path,
        "shell",
        "-c",
        code,
        CONTROLPLANE_ENV="production",
        SECRET_KEY=_production_secret(),
        ALLOWED_HOSTS="cp.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False True True True True ['cp.example.com']"

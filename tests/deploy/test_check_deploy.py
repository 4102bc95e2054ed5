"""`manage.py check --deploy --fail-level WARNING` passes with the production environment
deploy/README.md documents (read from its `/etc/meterline/env` block), and the defaults
still serve `make run` over plain http on localhost."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK = ["manage.py", "check", "--deploy", "--fail-level", "WARNING"]


def documented_environment() -> dict[str, str]:
    """The variables of deploy/README.md's `/etc/meterline/env`, with a real secret key."""
    text = (REPO / "deploy" / "README.md").read_text()
    block = re.search(r"cat > /etc/meterline/env <<EOF\n(.*?)\nEOF\n", text, re.S)
    assert block, "deploy/README.md documents no /etc/meterline/env"
    env = dict(line.split("=", 1) for line in block.group(1).splitlines() if "=" in line)
    assert env["SECRET_KEY"].startswith("$("), "the README makes the key; so does the test"
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # Nothing of the tests' own environment (pytest-env, the CI's) leaks in.
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env={**base, **env}, capture_output=True, text=True
    )


def test_check_deploy_passes_with_the_documented_production_environment():
    result = manage(*CHECK, env=documented_environment())
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "variable", ["HTTPS_ONLY", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG"], ids=str.lower
)
def test_check_deploy_fails_without_each_production_setting(variable):
    env = documented_environment()
    env[variable] = {"HTTPS_ONLY": "0", "SECRET_KEY": "short", "ALLOWED_HOSTS": "", "DEBUG": "1"}[
        variable
    ]
    result = manage(*CHECK, env=env)
    assert result.returncode != 0
    assert "security.W" in result.stderr


PRINT = (
    "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
    " s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER,"
    " s.CSRF_TRUSTED_ORIGINS)"
)


def test_the_defaults_serve_plain_http_on_localhost():
    result = manage("manage.py", "shell", "-v", "0", "-c", PRINT, env={})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "False", "0", "None", "[]"]


def test_the_production_switches():
    env = {
        **documented_environment(),
        "CSRF_TRUSTED_ORIGINS": "https://a.example,https://b.example",
    }
    result = manage("manage.py", "shell", "-v", "0", "-c", PRINT, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "True True True 31536000 ('HTTP_X_FORWARDED_PROTO', 'https') "
        "['https://a.example', 'https://b.example']"
    )


def test_the_procfile_runs_daphne_behind_the_proxy_headers():
    web = next(
        line for line in (REPO / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    assert "--proxy-headers" in web.split()

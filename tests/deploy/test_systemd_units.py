"""deploy/systemd/: every unit passes `systemd-analyze verify` (settings known, dependencies
present, ExecStart binaries there), and the settings the deployment relies on are set.

The units name the production paths (/opt/meterline and its .venv); since verify checks
that ExecStart binaries exist, it runs on copies pointing at this checkout and its venv.
"""

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
INSTALL_DIR = "/opt/meterline"
# runworker's default METERLINE_WORKER_GRACE_SECONDS (project/settings.py).
WORKER_GRACE_SECONDS = 25

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian: apt-get install systemd)",
)


def unit_names() -> list[str]:
    """Every unit, templates as their first instance (how systemd loads them)."""
    names = sorted(path.name for path in UNITS.iterdir() if not path.name.startswith("."))
    return [name.replace("@.", "@1.") for name in names]


def copy_for_this_checkout(destination: Path) -> None:
    for path in UNITS.iterdir():
        text = path.read_text()
        text = text.replace(f"{INSTALL_DIR}/.venv", sys.prefix).replace(INSTALL_DIR, str(ROOT))
        (destination / path.name).write_text(text)


def verify(directory: Path, names: list[str]) -> tuple[int, list[str]]:
    """systemd-analyze verify's return code and its lines about our units."""
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = (result.stdout + result.stderr).splitlines()
    return result.returncode, [line for line in lines if "meterline" in line]


def parse(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(UNITS / name)
    return parser


def seconds(value: str) -> int:
    return int(re.fullmatch(r"(\d+)s?", value).group(1))


@needs_systemd_analyze
def test_units_pass_systemd_analyze_verify(tmp_path):
    copy_for_this_checkout(tmp_path)
    returncode, complaints = verify(tmp_path, unit_names())
    assert complaints == []
    assert returncode == 0


@needs_systemd_analyze
@pytest.mark.parametrize(
    ("broken", "replacement"),
    [
        ("KillSignal=", "KillSignl="),  # an unknown key: a warning, return code 0
        ("/bin/python manage.py", "/bin/pythn manage.py"),  # a missing binary
        ("Requires=meterline-prometheus.service", "Requires=meterline-prometheu.service"),
    ],
)
def test_verify_reports_a_broken_unit(tmp_path, broken, replacement):
    copy_for_this_checkout(tmp_path)
    unit = tmp_path / "meterline-worker@.service"
    unit.write_text(unit.read_text().replace(broken, replacement, 1))
    returncode, complaints = verify(tmp_path, ["meterline-worker@1.service"])
    assert complaints or returncode != 0


def test_web_instances_share_the_socket_as_fd_3():
    socket = parse("meterline-web.socket")
    web = parse("meterline-web@.service")
    assert socket["Socket"]["Service"] == "meterline-web@1.service"
    assert web["Service"]["Sockets"] == "meterline-web.socket"
    command = web["Service"]["ExecStart"].split()
    assert command[1:] == ["--fd", "3", "--proxy-headers", "project.asgi:application"]
    assert web["Service"]["KillSignal"] == "SIGTERM"
    assert seconds(web["Service"]["TimeoutStopSec"]) >= 10


def test_workers_outwait_their_grace():
    worker = parse("meterline-worker@.service")
    assert worker["Service"]["ExecStart"].endswith("/bin/python manage.py runworker rating")
    assert seconds(worker["Service"]["TimeoutStopSec"]) > WORKER_GRACE_SECONDS


@pytest.mark.parametrize(
    "name",
    [
        "meterline-web@.service",
        "meterline-worker@.service",
        "meterline-celery.service",
        "meterline-beat.service",
    ],
)
def test_processes_share_the_prometheus_dir_and_the_host_settings(name):
    service = parse(name)["Service"]
    assert service["User"] == "meterline"
    assert service["WorkingDirectory"] == INSTALL_DIR
    assert service["EnvironmentFile"] == "/etc/meterline/env"
    assert service["LimitNOFILE"] == "65536"
    assert service["Restart"] == "always"
    assert service["ProtectSystem"] == "strict"
    # The one directory meterline-prometheus.service makes, writable under ProtectSystem.
    multiproc = "/run/" + parse("meterline-prometheus.service")["Service"]["RuntimeDirectory"]
    assert f"PROMETHEUS_MULTIPROC_DIR={multiproc}" in service["Environment"].split()
    assert service["ReadWritePaths"] == multiproc
    assert "meterline-prometheus.service" in parse(name)["Unit"]["Requires"].split()

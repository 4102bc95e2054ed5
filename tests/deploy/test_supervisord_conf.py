"""scripts/serve and deploy/supervisord.conf: the environment the wrapper hands supervisord,
and the process tree supervisor's own parser reads from the configuration with it.

The wrapper runs against a stand-in venv whose `python` (the migration) does nothing and
whose `supervisord` records its environment and arguments, so the configuration is
checked with exactly what `make serve` gives it, and nothing is started.
"""

import os
import stat
import subprocess
from pathlib import Path

import pytest
from supervisor.datatypes import RestartUnconditionally
from supervisor.options import FastCGIGroupConfig, ServerOptions

from project.shutdown import CLOSE_GRACE_SECONDS

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / "scripts" / "serve"
CONF = ROOT / "deploy" / "supervisord.conf"
STOP_WITHIN_SECONDS = 30  # the bound on Ctrl-C or SIGTERM of `make serve`

REQUIRED = {
    "DATABASE_URL": "postgres://meterline:pw@localhost/meterline",
    "REDIS_URL": "redis://localhost:6379/0",
    "SECRET_KEY": "meterline-tests-only-not-secret",
}


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run_serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """scripts/serve with a stand-in venv; supervisord's environment lands in tmp_path."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    _executable(venv / "bin" / "python", "#!/bin/sh\nexit 0\n")
    _executable(
        venv / "bin" / "supervisord",
        f'#!/bin/sh\nenv -0 > "{tmp_path}/env"\nprintf "%s\\n" "$@" > "{tmp_path}/args"\n',
    )
    base = {"PATH": os.environ["PATH"], "METERLINE_VENV": str(venv)}
    base["METERLINE_RUN_DIR"] = str(tmp_path / "run")
    return subprocess.run(
        [str(SERVE)], env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def supervisord_env(tmp_path: Path) -> dict[str, str]:
    entries = (tmp_path / "env").read_text().split("\0")
    return dict(entry.split("=", 1) for entry in entries if entry)


def load_config(monkeypatch, env: dict[str, str]) -> dict:
    """Process group configs by name, as supervisord reads them with this environment."""
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    options = ServerOptions()  # takes its %(ENV_...)s expansions from os.environ here
    options.realize(args=["-c", str(CONF)])
    return {group.name: group for group in options.process_group_configs}


@pytest.fixture
def served(tmp_path) -> dict[str, str]:
    result = run_serve(tmp_path, **REQUIRED)
    assert result.returncode == 0, result.stderr
    return supervisord_env(tmp_path)


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_serve_refuses_to_start_without_its_required_settings(tmp_path, missing):
    env = {name: value for name, value in REQUIRED.items() if name != missing}
    result = run_serve(tmp_path, **env)
    assert result.returncode == 2
    assert missing in result.stderr
    assert not (tmp_path / "env").exists()


def test_serve_execs_supervisord_in_the_foreground_on_the_deploy_config(tmp_path, served):
    assert (tmp_path / "args").read_text().split("\n")[:3] == ["-n", "-c", str(CONF)]
    assert served["PORT"] == "8000"
    assert served["BIND"] == "0.0.0.0"
    assert served["WEB_PROCESSES"] == "2"
    assert served["WORKERS"] == "2"
    assert served["METERLINE_ROOT"] == str(ROOT)
    assert served["METERLINE_LOG_DIR"] == str(tmp_path / "run" / "logs")
    assert int(served["METERLINE_NOFILE"]) >= 1024
    for name, value in REQUIRED.items():
        assert served[name] == value


def test_serve_empties_the_prometheus_multiprocess_dir(tmp_path):
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    (multiproc / "counter_4242.db").write_bytes(b"\0" * 16)
    (multiproc / "README").write_text("not prometheus-client's")
    result = run_serve(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(multiproc), **REQUIRED)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in multiproc.iterdir()) == ["README"]
    assert supervisord_env(tmp_path)["PROMETHEUS_MULTIPROC_DIR"] == str(multiproc)


def test_serve_defaults_the_prometheus_dir_to_the_run_dir(tmp_path, served):
    assert served["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "run" / "prometheus")
    assert Path(served["PROMETHEUS_MULTIPROC_DIR"]).is_dir()


def test_web_is_one_shared_socket_for_web_processes_daphne(monkeypatch, tmp_path):
    assert run_serve(tmp_path, WEB_PROCESSES="3", PORT="9000", **REQUIRED).returncode == 0
    groups = load_config(monkeypatch, supervisord_env(tmp_path))
    web = groups["web"]
    assert isinstance(web, FastCGIGroupConfig)
    assert web.socket_config.url == "tcp://0.0.0.0:9000"
    assert [process.name for process in web.process_configs] == ["web-0", "web-1", "web-2"]
    for process in web.process_configs:
        assert process.command.split()[1:] == [
            "--fd",
            "0",
            "--proxy-headers",
            "project.asgi:application",
        ]
        assert process.command.split()[0].endswith("/bin/daphne")
        # daphne waits up to CLOSE_GRACE_SECONDS for its WebSockets to close
        assert process.stopwaitsecs > CLOSE_GRACE_SECONDS


def test_workers_follow_workers_and_outwait_their_grace(monkeypatch, tmp_path):
    assert run_serve(tmp_path, WORKERS="4", **REQUIRED).returncode == 0
    worker = load_config(monkeypatch, supervisord_env(tmp_path))["worker"]
    assert len(worker.process_configs) == 4
    for process in worker.process_configs:
        command, grace = process.command.split(" --grace ")
        assert command.endswith("/bin/python manage.py runworker rating")
        assert process.stopwaitsecs > float(grace)


def test_a_stop_takes_at_most_thirty_seconds_whatever_hangs(monkeypatch, served):
    """supervisord stops one priority after another, each waiting up to its stopwaitsecs."""
    groups = load_config(monkeypatch, served)
    longest: dict[int, int] = {}
    for group in groups.values():
        for process in group.process_configs:
            longest[process.priority] = max(longest.get(process.priority, 0), process.stopwaitsecs)
    assert len(longest) == 3  # web, then the workers, then Celery and beat
    assert sum(longest.values()) <= STOP_WITHIN_SECONDS


def test_celery_and_beat_run_without_their_banner(monkeypatch, served):
    groups = load_config(monkeypatch, served)
    (celery,) = groups["celery"].process_configs
    (beat,) = groups["beat"].process_configs
    # `-q` before the subcommand: no ASCII banner breaking LOG_FORMAT=json.
    assert " -A project -q worker " in celery.command
    assert " -A project -q beat " in beat.command
    # A signal to the whole group would kill the pool child mid-task: warm shutdown only.
    assert not celery.stopasgroup
    assert celery.killasgroup


def test_every_process_restarts_stops_gracefully_and_logs_to_its_own_file(monkeypatch, served):
    groups = load_config(monkeypatch, served)
    assert sorted(groups) == ["beat", "celery", "web", "worker"]
    processes = [process for group in groups.values() for process in group.process_configs]
    log_files = [process.stdout_logfile for process in processes]
    assert len(set(log_files)) == len(processes)
    for process in processes:
        assert process.autorestart is RestartUnconditionally
        assert process.stopsignal == 15  # SIGTERM
        assert process.killasgroup
        assert process.redirect_stderr
        assert process.stdout_logfile.startswith(served["METERLINE_LOG_DIR"] + "/")
        assert process.directory == str(ROOT)

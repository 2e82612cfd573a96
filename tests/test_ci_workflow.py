"""The GitHub Actions workflow runs every nox session that ``./run tests`` queues.

``nox`` (the ``ci`` session) queues every other session; ``.github/workflows/ci.yml``
lists them one job per session (issue 13 item 10). A plugin, a server source or a session
added to noxfile.py without a line in the workflow would run locally and never on GitHub:
this fails instead. The workflow is read without a YAML library (the test extra has none):
its ``session:`` lists are plain block sequences, one session per line.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
#: `session:` alone on its line, then `- "name"` items indented below it.
SESSION_KEY = re.compile(r"^(?P<indent> *)session:\s*$")
SESSION_ITEM = re.compile(r"""^(?P<indent> *)-\s+(?P<quote>["']?)(?P<name>.+?)(?P=quote)\s*$""")


def nox_sessions() -> set[str]:
    """Every session noxfile.py defines, as ``nox -s`` names them, except ``ci``."""
    nox = shutil.which("nox") or shutil.which("nox", path=str(Path(sys.executable).parent))
    assert nox, "nox is not on PATH: pip install nox (./run tests puts .venv/bin on PATH)"
    listing = subprocess.run(
        # nox -l --json lists the selected sessions only; this expression selects all.
        [nox, "--list", "--json", "--keywords", "ci or not ci"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return {entry["session"] for entry in json.loads(listing.stdout)} - {"ci"}


def workflow_sessions(text: str) -> list[str]:
    """The items of every ``session:`` block list in the workflow, in order."""
    found: list[str] = []
    key_indent: int | None = None
    for line in text.splitlines():
        if key := SESSION_KEY.match(line):
            key_indent = len(key["indent"])
            continue
        item = SESSION_ITEM.match(line)
        if key_indent is not None and item and len(item["indent"]) > key_indent:
            found.append(item["name"])
        elif line.strip() and not line.lstrip().startswith("#"):
            key_indent = None
    return found


def test_the_workflow_runs_every_session_the_ci_session_queues() -> None:
    listed = workflow_sessions(WORKFLOW.read_text())

    missing = nox_sessions() - set(listed)
    assert not missing, f"add these nox sessions to a `session:` list in {WORKFLOW}: {missing}"


def test_the_workflow_names_only_sessions_that_exist_and_each_once() -> None:
    listed = workflow_sessions(WORKFLOW.read_text())

    unknown = set(listed) - nox_sessions()
    assert not unknown, f"{WORKFLOW} runs sessions noxfile.py does not define: {unknown}"
    assert len(listed) == len(set(listed)), listed


def test_session_lists_are_read_as_written() -> None:
    text = """
    strategy:
      matrix:
        session:
          - "tests(system)"
          # a comment
          - plugin(stripe, system)
          - 'lint'
    steps:
      - uses: actions/checkout@v5
    """

    assert workflow_sessions(text) == ["tests(system)", "plugin(stripe, system)", "lint"]

"""docs/requirements.md holds and comments cite it (issue 13 item 9).

Comments used to cite the previous version's scale audit by section ("audit §3", "audit
B4", "audit must-fix 7") and notes outside the repository; a reader of the repository
could look none of them up. Requirements now have ids in ``docs/requirements.md``, each
with the tests that prove it, and this test keeps both honest.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "docs" / "requirements.md"

#: A requirement's heading: ``**SCALE-4 — Every list is bounded.**``.
REQUIREMENT_ID = re.compile(r"^\*\*([A-Z]+-\d+) — ", re.MULTILINE)
#: A cited test: a backquoted path to a test file, optionally ``::test_name``.
CITED_TEST = re.compile(
    r"`((?:tests|tests_browser|tests_simulate|plugins)/[^`:]+\.py)(?:::(\w+))?`"
)

#: Citations that point outside the repository instead of at a requirement id.
#: A section sign followed by a number is an audit section unless it is an RFC's
#: (``RFC 9110 §8.6``: a number before it, or a dotted subsection).
OUTSIDE_CITATION = re.compile(
    r"audit\s*\(?(?:§|section\s*\d|B\d|must-fix|scenario|conclusion)"
    r"|must-fix|(?<![0-9] )§\s*\d+(?![.\d])"
    r"|STACK-NOTES|DESIGN\.md|\.\./shared|000_dcc3c24c5985e7cb",
    re.IGNORECASE,
)

SCANNED_SUFFIXES = {".py", ".md", ".toml", ".sql", ".conf", ".service", ".ini", ".js", ".yml"}
SKIPPED_DIRS = {".git", ".venv", ".nox", "node_modules", "__pycache__", ".pixecom"}

_FOLLOW_UP = (
    "issue 13 item 9, follow-up: owned by another change in flight when the citations were "
    "replaced; point its comments at docs/requirements.md ids, then remove it from this list."
)
#: Files that still cite the audit, each with why it may for now. Not checked for
#: staleness on purpose: other changes in flight rewrite or move these files; whoever
#: lands the follow-up removes the entries.
ALLOWED: dict[str, str] = {
    "pixecom_core/ledger/service.py": _FOLLOW_UP,
    "pixecom_core/ledger/inbox.py": _FOLLOW_UP,
    "pixecom_core/ledger/money.py": _FOLLOW_UP,
    "pixecom_core/providers/sandboxes.py": _FOLLOW_UP,
    "reference_app/simulate/__init__.py": _FOLLOW_UP,
    "reference_app/simulate/scenarios.py": _FOLLOW_UP,
    "reference_app/simulate/report.py": _FOLLOW_UP,
    "reference_app/simulate/probes.py": _FOLLOW_UP,
    "reference_app/simulate/deployment.py": _FOLLOW_UP,
    "reference_app/simulate/runner.py": _FOLLOW_UP,
    "reference_app/simulate/load.py": _FOLLOW_UP,
    "reference_app/simulate/cli.py": _FOLLOW_UP,
    "plugins/stripe/src/pixecom_stripe/client.py": _FOLLOW_UP,
    "plugins/tracking17/src/pixecom_tracking17/client.py": _FOLLOW_UP,
    "plugins/tracking17/src/pixecom_tracking17/settings.py": _FOLLOW_UP,
    "plugins/meta_ads/src/pixecom_meta_ads/settings.py": _FOLLOW_UP,
    "plugins/r2_storage/src/pixecom_r2_storage/settings.py": _FOLLOW_UP,
    # This test names the patterns it forbids.
    "tests/test_requirements_doc.py": "the patterns this test looks for",
}


def _requirements_text() -> str:
    return REQUIREMENTS.read_text(encoding="utf-8")


def _scanned_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if any(part in SKIPPED_DIRS for part in relative.parts):
            continue
        if path.is_file() and path.suffix in SCANNED_SUFFIXES:
            files.append(path)
    return files


def test_every_requirement_id_is_unique() -> None:
    ids = REQUIREMENT_ID.findall(_requirements_text())
    assert len(ids) > 30, "requirement headings not found; did their format change?"
    duplicates = sorted({each for each in ids if ids.count(each) > 1})
    assert not duplicates, f"requirement ids used twice: {duplicates}"


def test_every_requirement_is_proved_by_a_test() -> None:
    sections = re.split(r"^(?=\*\*[A-Z]+-\d+ — )", _requirements_text(), flags=re.MULTILINE)
    unproved = [
        REQUIREMENT_ID.match(section).group(1)  # type: ignore[union-attr]
        for section in sections
        if REQUIREMENT_ID.match(section) and not CITED_TEST.search(section)
    ]
    assert not unproved, f"requirements without a test under 'Proved by': {unproved}"


def test_every_cited_test_exists() -> None:
    missing = []
    for path, name in CITED_TEST.findall(_requirements_text()):
        test_file = ROOT / path
        if not test_file.is_file():
            missing.append(path)
        elif name and not re.search(
            rf"^(?:async )?def {re.escape(name)}\(", test_file.read_text(encoding="utf-8"), re.M
        ):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/requirements.md cites tests that do not exist: {missing}"


def test_code_cites_requirement_ids_not_documents_outside_the_repository() -> None:
    offending = []
    for path in _scanned_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative == "docs/requirements.md" or relative in ALLOWED:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE_CITATION.search(line):
                offending.append(f"{relative}:{number}: {line.strip()}")
    assert not offending, (
        "cite a docs/requirements.md id instead of the audit or a file outside the "
        "repository:\n" + "\n".join(offending)
    )

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

#: What the project ships as text: sources, docs, configs (nginx, PgBouncer), systemd
#: units and timers, the deploy kit's ``.env.example``, templates, the dashboard's assets.
SCANNED_SUFFIXES = {
    ".py",
    ".md",
    ".toml",
    ".sql",
    ".conf",
    ".service",
    ".timer",
    ".target",
    ".ini",
    ".js",
    ".css",
    ".html",
    ".mako",
    ".yml",
    ".yaml",
    ".cfg",
    ".txt",
    ".sh",
    ".example",
}
#: Shipped text files without a suffix: the CI runner scripts, ``.gitignore``.
SCANNED_NAMES = {"run", ".gitignore"}
SKIPPED_DIRS = {
    ".git",
    ".venv",
    ".nox",
    "node_modules",
    "__pycache__",
    ".pixecom",
    ".hypothesis",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "build",
    "dist",
    "test-artifacts",
}

#: Files that may name the patterns, each with why.
ALLOWED: dict[str, str] = {
    # This test names the patterns it forbids.
    "tests/test_requirements_doc.py": "the patterns this test looks for",
}


def _requirements_text() -> str:
    return REQUIREMENTS.read_text(encoding="utf-8")


def _scanned_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if any(part in SKIPPED_DIRS or part.endswith(".egg-info") for part in relative.parts):
            continue
        if path.is_file() and (path.suffix in SCANNED_SUFFIXES or path.name in SCANNED_NAMES):
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

"""The repository stands on its own: tests and benches read nothing outside it, and every fixture has a source."""

from __future__ import annotations

import re
from pathlib import Path

from tests.reference import FIXTURES_DIR

ROOT = Path(__file__).resolve().parents[1]
PROVENANCE = FIXTURES_DIR / "PROVENANCE.md"

# Built from pieces so that this file does not match its own patterns (nor a plain grep for them).
OUTSIDE_READS = {
    "a sibling folder of the checkout (.." + "/shared)": re.compile(r"\.\./" + "shared"),
    "a folder above the repository (parents[N], N of 2 or more)": re.compile(r"parents\[(?:[2-9]|\d\d)\]"),
    "a folder above the repository (.parent chained three times)": re.compile(r"(?:\.parent){3}"),
    "an absolute path under /" + "work": re.compile("/" + r"work/"),
    "the retired reference-dir override": re.compile("SALESPULSE_" + "REFERENCE_DIR"),
}


def _sources() -> list[Path]:
    """Every Python file under tests/ and bench/ (fixtures hold data only, and are checked below)."""
    return sorted(p for folder in ("tests", "bench") for p in (ROOT / folder).rglob("*.py")
                  if FIXTURES_DIR not in p.parents)


def _listed() -> list[str]:
    """The paths (relative to tests/fixtures) in the first column of PROVENANCE.md's Index table."""
    text = PROVENANCE.read_text(encoding="utf-8")
    index = text.split("\n## Index\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", index, flags=re.MULTILINE)


def _exists(listed: str) -> bool:
    """A listed folder (ending in '/') is a directory under tests/fixtures; a listed file is a file there."""
    path = FIXTURES_DIR / listed
    return path.is_dir() if listed.endswith("/") else path.is_file()


def test_tests_and_benches_read_nothing_outside_the_repository() -> None:
    """No source under tests/ or bench/ names a folder beside or above the checkout, or the old override."""
    found = [
        f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()}"
        for path in _sources()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for what, pattern in OUTSIDE_READS.items()
        if pattern.search(line)
    ]
    assert len(_sources()) > 10, "tests/ and bench/ not found"
    assert not found, "reads outside the repository:\n" + "\n".join(found)


def test_every_listed_fixture_exists() -> None:
    """Each path in PROVENANCE.md's index is there: a folder when it ends in '/', else a file."""
    listed = _listed()
    assert len(listed) >= 10, f"no Index table found in {PROVENANCE}"
    missing = [p for p in listed if not _exists(p)]
    assert not missing, f"listed in {PROVENANCE.name} but absent from tests/fixtures: {missing}"


def test_every_fixture_is_listed_in_provenance() -> None:
    """Each file under tests/fixtures is named in the index, itself or through its folder."""
    listed = _listed()
    folders = tuple(p for p in listed if p.endswith("/"))
    files = {p for p in listed if not p.endswith("/")}
    present = [p.relative_to(FIXTURES_DIR).as_posix() for p in FIXTURES_DIR.rglob("*") if p.is_file()]
    unlisted = [p for p in present if p != PROVENANCE.name and p not in files and not p.startswith(folders)]
    assert len(present) > 50, f"fixtures missing under {FIXTURES_DIR}"
    assert not unlisted, f"files under tests/fixtures without a source in {PROVENANCE.name}: {unlisted}"

"""The repository explains itself: the code cites docs/SPEC.md, never a file users do not
have.

- No .py under hwgen/, flows/ or tests/ cites the old design contract by its name (as
  "<name> section N", "<name> s. N" or "<name>.md"), and none names a path outside the
  repository (the machine's /work/ tree, ../shared).
- Every "SPEC section N" (or "SPEC sections N and M", "N-M", "N.k") that a .py cites
  exists as a "## N." heading of docs/SPEC.md.
- Every docs/*.md that names a hwgen module or a docs page names one that exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "SPEC.md"
OLD = "DESIGN"

# "<old> section 3", "<old> sections 1-5", "<old> s. 7", "<old> s.10.5", "<old>.md", and
# the same split over a line break. A bare word (a make variable called DESIGN) is fine.
OLD_CITATION = re.compile(rf"\b{OLD}(?:\.md\b|\s+(?:sections?\b|s\.|\d))")
OUTSIDE = re.compile(r"/work/|\.\./shared\b|\bshared/(?:{}|DEVICES|STYLE|QONNX)".format(OLD))
NUMBER = r"\d+(?:\.\d+)?"
SPEC_CITATION = re.compile(rf"\bSPEC\s+sections?\s+({NUMBER}(?:\s*(?:,|/|-|and)\s*{NUMBER})*)")


def _sources() -> list[Path]:
    """Every .py under hwgen/, flows/ and tests/ but this file (its checks quote examples)."""
    me = Path(__file__).resolve()
    return sorted(p for d in ("hwgen", "flows", "tests") for p in (ROOT / d).rglob("*.py")
                  if p.resolve() != me)


def spec_sections(text: str) -> set[int]:
    """The section numbers of docs/SPEC.md's `## N. Title` headings."""
    return {int(m) for m in re.findall(r"^## (\d+)\. ", text, re.M)}


def cited_sections(text: str) -> list[tuple[int, str]]:
    """(major section number, the citation as written) of every SPEC citation in `text`."""
    out = []
    for m in SPEC_CITATION.finditer(text):
        for n in re.findall(NUMBER, m[1]):
            out.append((int(n.split(".")[0]), " ".join(m[0].split())))
    return out


def old_citations(text: str) -> list[str]:
    return [" ".join(m[0].split()) for m in OLD_CITATION.finditer(text)]


def test_spec_has_sections_1_to_13():
    assert spec_sections(SPEC.read_text()) == set(range(1, 14))


def test_no_citation_of_the_old_contract():
    bad = [f"{p.relative_to(ROOT)}: {c}" for p in _sources() for c in old_citations(p.read_text())]
    assert not bad, "cite docs/SPEC.md as 'SPEC section N' instead:\n" + "\n".join(bad)


def test_no_path_outside_the_repository():
    bad = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in _sources()
           for i, line in enumerate(p.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert not bad, "paths outside the repository:\n" + "\n".join(bad)


def test_every_cited_spec_section_exists():
    have = spec_sections(SPEC.read_text())
    bad = [f"{p.relative_to(ROOT)}: {c}" for p in _sources()
           for n, c in cited_sections(p.read_text()) if n not in have]
    assert not bad, "cited sections missing from docs/SPEC.md:\n" + "\n".join(bad)


def test_docs_link_to_pages_that_exist():
    bad = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        for target in re.findall(r"\]\(([A-Za-z0-9_./-]+\.md)\)", page.read_text()):
            if not (page.parent / target).is_file():
                bad.append(f"{page.name}: {target}")
    assert not bad, "broken links:\n" + "\n".join(bad)


# -- the checkers themselves catch what they are for -------------------------------------

@pytest.mark.parametrize("text", [
    f"(see {OLD} section 3)", f"({OLD} sections 1-5)", f"({OLD} s. 7)", f"({OLD} s.10.5)",
    f"against the {OLD}\n    section 7 bound", f"the model itself ({OLD}\n    10.5/10.6)",
    f"../shared/{OLD}.md",
])
def test_old_citation_is_caught(text):
    assert old_citations(text)


@pytest.mark.parametrize("text", [
    f"make -C sim {OLD}=OUTDIR", f"a compiled folder {OLD}.", f"{OLD} is read through",
    "the DESIGN_ROOT variable", "SPEC section 3",
])
def test_other_uses_pass(text):
    assert not old_citations(text)


def test_outside_path_is_caught():
    assert OUTSIDE.search("copied from /work/shared/DEVICES.md")
    assert OUTSIDE.search("see ../shared/STYLE.md")
    assert not OUTSIDE.search("docs/DEVICES.md section 2")


def test_cited_sections_are_parsed():
    text = ("(SPEC section 8) (SPEC sections 1-5) (SPEC sections 2 and 7) "
            "(SPEC sections\n    10.5/10.6) (SPEC sections 1-4, 8, 9) SPEC section 7 bound")
    assert [n for n, _ in cited_sections(text)] == [8, 1, 5, 2, 7, 10, 10, 1, 4, 8, 9, 7]


def test_a_missing_section_is_caught():
    have = spec_sections("## 1. Values\n## 2. One binary layer\n### 2.1 not a section\n")
    assert have == {1, 2}
    assert [n for n, _ in cited_sections("(SPEC section 14)") if n not in have] == [14]

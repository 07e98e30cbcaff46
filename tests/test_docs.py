"""The documents stand on their own: every relative link resolves, and none names an absolute path."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# a path from the file-system root: "/" + a name + "/" not inside a URL, a fraction, a word or a
# placeholder such as `round-<r>/evaluation/`
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~\-\]>}])/[A-Za-z_][\w.\-]*/")
README_MAX_LINES = 250


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # links in code are code
    return LINK.findall(text)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document):
    for target in _links(document):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: outside the repository on purpose
            continue
        file, _, anchor = target.partition("#")
        resolved = (document.parent / file).resolve() if file else document
        assert resolved.exists(), f"{document.name}: link {target!r} points at nothing"
        assert ROOT in resolved.parents or resolved == ROOT, (
            f"{document.name}: {target!r} leaves the repository"
        )
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{document.name}: no heading #{anchor} in {resolved.name}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_document_names_an_absolute_path(document):
    found = [m.group(0) for m in ABSOLUTE_PATH.finditer(document.read_text())]
    assert not found, f"{document.name} names absolute paths: {found}"


def test_the_readme_is_a_short_map_that_links_every_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    linked = {Path(target.partition("#")[0]).name for target in _links(ROOT / "README.md")}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages <= linked, f"pages the README does not link: {sorted(pages - linked)}"

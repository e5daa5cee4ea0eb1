"""The repository documents itself: no tracked file cites a document a user does not have,
and every docs/ page (and #anchor) that a file points at exists.

The model the code implements was first written down in design notes that live outside the
repository; citations of those notes are dead links for every user, so they are forbidden
here and the text lives in docs/model.md instead.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Built by concatenation so that this file does not match its own patterns.
FORBIDDEN = [
    "ALGORITHMS" + ".md",
    "NEURRAM_BOARD" + "_FACTS",
    "TOOLCHAIN" + ".md",
    "DATA" + ".md",
    "shared" + "/spec",
]

DOC_REF = re.compile(r"docs/([A-Za-z0-9_\-]+\.md)(?:#([A-Za-z0-9_\-]+))?")
"""A pointer written as text anywhere: docs/<page>.md or docs/<page>.md#<anchor>."""
LINK = re.compile(r"\]\(([A-Za-z0-9_\-]+\.md)?(?:#([A-Za-z0-9_\-]+))?\)")
"""A relative Markdown link inside docs/: [text](page.md#anchor) or [text](#anchor)."""

BINARY_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".pdf", ".gz", ".zip", ".npz", ".npy",
                   ".pkl", ".ico", ".woff", ".woff2"}


def tracked_text_files() -> list[Path]:
    """Every file git tracks that decodes as UTF-8 text (skipping binaries)."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                         capture_output=True).stdout
    files = []
    for name in out.decode().split("\0"):
        path = ROOT / name
        if not name or path.suffix.lower() in BINARY_SUFFIXES or not path.is_file():
            continue
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        files.append(path)
    return files


def heading_anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the Markdown headings (lower case, punctuation dropped,
    spaces to hyphens, repeats numbered -1, -2, ...); fenced code is not a heading."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not re.match(r"#{1,6} ", line):
            continue
        text = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


FILES = tracked_text_files()


def test_there_are_files_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in FILES}
    assert {"README.md", "cimflow/config.py", "docs/model.md"} <= names


def test_anchor_slugs():
    """The slug rule matches GitHub's on the cases the docs use."""
    md = "# Neuron / ADC (sign + search)\n## Corelets\n## Corelets\n```\n# no\n```\n"
    assert heading_anchors(md) == {"neuron--adc-sign--search", "corelets", "corelets-1"}


@pytest.mark.parametrize("pattern", FORBIDDEN)
def test_no_citation_of_files_outside_the_repository(pattern):
    hits = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in FILES
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern in line
    ]
    assert not hits, f"{pattern} is not in the repository but is cited at: {', '.join(hits)}"


def test_every_cited_docs_page_and_anchor_exists():
    anchors: dict[str, set[str]] = {}
    missing = []
    for p in FILES:
        text = p.read_text(encoding="utf-8")
        refs = [(m.group(1), m.group(2)) for m in DOC_REF.finditer(text)]
        if p.parent == ROOT / "docs" and p.suffix == ".md":
            refs += [(m.group(1) or p.name, m.group(2)) for m in LINK.finditer(text)]
        for page, anchor in refs:
            target = ROOT / "docs" / page
            where = f"{p.relative_to(ROOT)}: docs/{page}" + (f"#{anchor}" if anchor else "")
            if not target.is_file():
                missing.append(where + " (no such page)")
                continue
            if anchor:
                if page not in anchors:
                    anchors[page] = heading_anchors(target.read_text(encoding="utf-8"))
                if anchor not in anchors[page]:
                    missing.append(where + " (no such heading)")
    assert not missing, "dangling docs references: " + "; ".join(missing)

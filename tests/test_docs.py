"""The documentation matches the code: every file the docs and docstrings point to exists, and
docs/suite-format.md documents every key a suite file may hold."""

from __future__ import annotations

import re
from pathlib import Path

from qpbench.runner.suite import GROUP_ONLY, SETTINGS, TOP_ONLY

REPO = Path(__file__).resolve().parents[1]
MARKDOWN = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "problems").glob("*.md")),
            REPO / "benchmarks" / "README.md", *sorted((REPO / "reports").glob("*/README.md"))]  # fmt: skip
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
PATH = re.compile(r"(?<![\w/.])((?:docs|problems|reports|benchmarks)/[\w./-]+\.(?:md|py|toml))")


def test_every_markdown_link_resolves() -> None:
    broken = []
    for page in MARKDOWN:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, broken


def test_every_path_named_in_docs_and_docstrings_exists() -> None:
    sources = [*MARKDOWN, *sorted((REPO / "qpbench").rglob("*.py")), REPO / "tox.ini"]
    missing = []
    for source in sources:
        for path in PATH.findall(source.read_text(encoding="utf-8")):
            if not (REPO / path).exists():
                missing.append(f"{source.relative_to(REPO)}: {path}")
    assert not missing, missing


def test_suite_format_documents_every_key() -> None:
    text = (REPO / "docs" / "suite-format.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    documented = {key for line in rows for key in re.findall(r"`(\w+)`", line.split("|")[1])}
    assert set(SETTINGS) | set(TOP_ONLY) | set(GROUP_ONLY) <= documented

"""A tiny document model rendered twice: to Markdown (plots as PNG links) and to one HTML file.

Sections build lists of blocks instead of strings so that the Markdown and the HTML versions can
never disagree on content. Every table carries a one-line title so two reports diff cleanly.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    path: Path  # a PNG inside the report directory
    caption: str


@dataclass(frozen=True)
class Contents:
    """A table of contents: links to every heading of these levels that follows it."""

    levels: tuple[int, ...] = (2, 3)


Block = Heading | Paragraph | Table | Image | Contents


def anchor_ids(blocks: Sequence[Block]) -> dict[int, str]:
    """An id per heading (keyed by its index in ``blocks``), as GitHub makes them: lower case,
    punctuation dropped, spaces as hyphens, "-1", "-2" added to repeats. The HTML page uses the
    same ids, so the contents' links work in both renderings."""
    ids: dict[int, str] = {}
    seen: dict[str, int] = {}
    for i, block in enumerate(blocks):
        if not isinstance(block, Heading):
            continue
        base = re.sub(r"[^\w\- ]", "", block.text.lower()).replace(" ", "-")
        count = seen.get(base, 0)
        seen[base] = count + 1
        ids[i] = base if count == 0 else f"{base}-{count}"
    return ids


def _contents_entries(blocks: Sequence[Block], start: int, levels: tuple[int, ...]) -> list[tuple[int, str, str]]:
    ids = anchor_ids(blocks)
    return [(b.level, b.text, ids[i]) for i, b in enumerate(blocks) if i > start and isinstance(b, Heading)
            and b.level in levels]  # fmt: skip


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    """A table whose cells are already formatted; every row must match the header width."""
    cells = tuple(tuple(str(cell) for cell in row) for row in rows)
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"table {title!r}: row has {len(row)} cells, headers have {len(headers)}")
    return Table(title, tuple(headers), cells)


def _md_link_text(text: str) -> str:
    return text.replace("[", "(").replace("]", ")").replace("*", "\\*")


def _md_cell(text: str) -> str:
    # A pipe or newline would break the table; a star could start emphasis.
    return text.replace("|", "\\|").replace("*", "\\*").replace("\n", " ")


def to_markdown(blocks: Sequence[Block], out_dir: Path) -> str:
    lines: list[str] = []
    for index, block in enumerate(blocks):
        if isinstance(block, Contents):
            top = min(block.levels)
            for level, text, anchor in _contents_entries(blocks, index, block.levels):
                lines.append("  " * (level - top) + f"* [{_md_link_text(text)}](#{anchor})")
            lines.append("")
        elif isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, Table):
            lines += [f"**{block.title}**", ""]
            if not block.rows:
                lines += ["(no rows)", ""]
                continue
            lines.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
            lines.append("|" + "|".join(" --- " for _ in block.headers) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            lines.append("")
        elif isinstance(block, Image):
            rel = block.path.relative_to(out_dir).as_posix()
            lines += [f"![{block.caption}]({rel})", "", f"*{block.caption}*", ""]
    return "\n".join(lines).rstrip() + "\n"


# Wide tables scroll inside their own box instead of widening the page, and long cells (errors,
# option lists) wrap, so nothing overflows the window.
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
.table { overflow-x: auto; margin: 0.3em 0 1.2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
td { max-width: 36em; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
.title { font-weight: bold; margin-top: 1em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-style: italic; font-size: 0.9em; }
code { background: #f4f4f4; padding: 0 0.2em; overflow-wrap: break-word; }
nav ul { margin: 0.2em 0; }
"""


def _inline_html(text: str) -> str:
    """Escape text, then turn Markdown `code` spans into <code> (the only inline markup used)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


def to_html(blocks: Sequence[Block], title: str) -> str:
    """A self-contained page: CSS inline, PNGs embedded as base64, no external assets."""
    body: list[str] = []
    ids = anchor_ids(blocks)
    for index, block in enumerate(blocks):
        if isinstance(block, Contents):
            body.append(_html_contents(_contents_entries(blocks, index, block.levels), min(block.levels)))
        elif isinstance(block, Heading):
            level = min(max(block.level, 1), 6)
            body.append(f'<h{level} id="{ids[index]}">{_inline_html(block.text)}</h{level}>')
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline_html(block.text)}</p>")
        elif isinstance(block, Table):
            body.append(f'<div class="title">{_inline_html(block.title)}</div>')
            if not block.rows:
                body.append("<p>(no rows)</p>")
                continue
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in block.headers)
            rows = "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            body.append(f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>')
        elif isinstance(block, Image):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            caption = _inline_html(block.caption)
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _html_contents(entries: list[tuple[int, str, str]], top: int) -> str:
    """Nested lists of links, one level of nesting per heading level below ``top``."""
    parts, depth = ["<nav>"], top - 1
    for level, text, anchor in entries:
        while depth < level:
            parts.append("<ul>")
            depth += 1
        while depth > level:
            parts.append("</ul>")
            depth -= 1
        parts.append(f'<li><a href="#{anchor}">{_inline_html(text)}</a></li>')
    parts += ["</ul>"] * (depth - top + 1) + ["</nav>"]
    return "".join(parts)

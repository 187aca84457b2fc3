"""CONTRIBUTING.md as HTML for the submit page, safe and without links that lead nowhere.

CommonMark (with tables) through markdown-it-py, raw HTML off: a `<script>`
in the file is shown as text. The file's links are written for the
repository, not the site: a relative link becomes a link to that file in the
repository at the built commit (plain text when no repository is known), a
same-page `#anchor` becomes plain text (the rendered headings carry no ids),
and an image becomes its alt text, so the page loads nothing from outside.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup


def relative(href: str) -> bool:
    parts = urlsplit(href)
    return not parts.scheme and not parts.netloc


def as_text(token: Token, content: str = "") -> None:
    """Turn `token` into plain text in place (the renderer escapes text tokens)."""
    token.type, token.tag, token.nesting, token.attrs, token.children, token.content = "text", "", 0, {}, None, content


def link_target(href: str, repository_file: Callable[[str], str | None]) -> str | None:
    """Where a link of the file should point on the site: absolute links as they are, relative ones into the
    repository, None (unlink) when that is not possible."""
    if not relative(href):
        return href
    path, _, fragment = href.partition("#")
    target = repository_file(path) if path else None
    return f"{target}#{fragment}" if target and fragment else target


def rewrite_links(tokens: list[Token], repository_file: Callable[[str], str | None]) -> None:
    """Point relative links at the repository; unlink what cannot be resolved; replace images with their alt text.
    (Markdown links do not nest, so one flag tracks whether the open link was unlinked.)"""
    for token in tokens:
        unlinked = False
        for child in token.children or []:
            if child.type == "image":
                as_text(child, child.content)
            elif child.type == "link_open":
                target = link_target(str(child.attrs.get("href", "")), repository_file)
                unlinked = target is None
                if unlinked:
                    as_text(child)
                else:
                    child.attrs["href"] = target
            elif child.type == "link_close" and unlinked:
                as_text(child)
                unlinked = False


def demote_headings(tokens: list[Token], levels: int) -> None:
    """Shift headings down (# -> h2 with levels=1), so the embedding page keeps its single h1."""
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1:]) + levels)}"


def render_markdown(text: str, repository_file: Callable[[str], str | None], demote: int = 1) -> Markup:
    """`text` (Markdown) as safe HTML for a template; `repository_file(path)` links a file of the repository;
    headings move `demote` levels down."""
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(text)
    rewrite_links(tokens, repository_file)
    demote_headings(tokens, demote)
    return Markup(parser.renderer.render(tokens, parser.options, {}))  # noqa: S704 - markdown-it escaped every text

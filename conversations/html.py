"""Email HTML made safe to show an agent, and quoted history folded away."""
from __future__ import annotations

import re
from collections.abc import Callable
from html import escape

import nh3
from mailparser_reply import EmailReplyParser

# Languages whose reply headers ("On … wrote:", "Am … schrieb:") are recognised.
_REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "sv"]
_reply_parser = EmailReplyParser(languages=_REPLY_LANGUAGES)


_CID_SRC = re.compile(r'src="cid:([^"]+)"', re.IGNORECASE)


def sanitize_email_html(html: str) -> str:
    """nh3 drops scripts, handlers, forms, styles and javascript: URLs.

    `cid:` references are kept (the viewer maps them to the attachment); remote images
    stay in the markup but are never fetched unless the agent asks: the viewer serves the
    HTML under a CSP whose img-src excludes remote hosts.
    """
    return nh3.clean(html, url_schemes={"http", "https", "mailto", "tel", "cid"})


def html_with_cid_urls(html: str, *, cid_url: Callable[[str], str | None]) -> str:
    """Point sanitised `src="cid:…"` references at their attachments (or drop them)."""

    def replace(match: re.Match[str]) -> str:
        url = cid_url(match.group(1).strip("<>"))
        return f'src="{escape(url)}"' if url else 'src=""'

    return _CID_SRC.sub(replace, html)


def fold_quoted_text(text: str) -> str:
    """The new part of a reply, without quoted history or the "On … wrote:" block."""
    if not text.strip():
        return ""
    try:
        folded = _reply_parser.parse_reply(text=text)
    except Exception:  # noqa: BLE001 - a parser failure must never lose the message
        return text.strip()
    return (folded or text).strip()

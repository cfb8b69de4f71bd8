"""Email HTML made safe, cid: images mapped, quotes folded (Gmail, Outlook, Apple Mail)."""
from __future__ import annotations

from conversations.html import fold_quoted_text, html_with_cid_urls, sanitize_email_html

HOSTILE = """
<p onclick="steal()">Hello <b>there</b></p>
<script>window.top.pwned = 1</script>
<img src="x" onerror="window.top.pwned = 2">
<a href="javascript:alert(1)">click</a>
<iframe src="https://evil.test/"></iframe>
<form action="https://evil.test/"><input name="pw"></form>
<style>body { display: none }</style>
<img src="https://tracker.test/pixel.gif" width="1" height="1">
<img src="cid:logo123">
"""


def test_sanitizer_drops_scripts_handlers_and_javascript_urls():
    clean = sanitize_email_html(HOSTILE)

    for forbidden in ("<script", "onclick", "onerror", "javascript:", "<iframe", "<form", "<style", "pwned"):
        assert forbidden not in clean
    assert "<b>there</b>" in clean
    assert 'rel="noopener noreferrer"' in clean
    # Remote images stay in the markup; the viewer's CSP keeps them from loading.
    assert "https://tracker.test/pixel.gif" in clean
    assert 'src="cid:logo123"' in clean


def test_cid_references_point_at_their_attachments_and_unknown_ones_are_dropped():
    clean = sanitize_email_html('<img src="cid:logo123"><img src="cid:missing">')

    mapped = html_with_cid_urls(clean, cid_url={"logo123": "/attachments/abc/?t=1&x=2"}.get)

    assert 'src="/attachments/abc/?t=1&amp;x=2"' in mapped
    assert 'src=""' in mapped and "cid:" not in mapped


def test_gmail_quote_is_folded():
    text = ("Works now, thanks.\n\nOn Mon, Mar 3, 2025 at 10:15 AM Acme Support <support@acme.test>\nwrote:\n"
            "> Please try restarting.\n> Best, Acme\n")
    assert fold_quoted_text(text) == "Works now, thanks."


def test_outlook_reply_block_is_folded():
    text = ("Please cancel my order.\n\nFrom: Acme Support <support@acme.test>\nSent: Monday, March 3, 2025 10:15 AM\n"
            "To: Jane <jane@example.org>\nSubject: RE: Order 1234\n\nYour order has shipped.\n")
    assert fold_quoted_text(text) == "Please cancel my order."


def test_apple_mail_quote_is_folded():
    text = "Great, see you then.\n\nOn 3 Mar 2025, at 10:15, Acme Support <support@acme.test> wrote:\n\n> Tuesday works.\n"
    assert fold_quoted_text(text) == "Great, see you then."


def test_text_without_quotes_is_kept_whole():
    assert fold_quoted_text("Just one line.\nAnd another.") == "Just one line.\nAnd another."
    assert fold_quoted_text("   ") == ""

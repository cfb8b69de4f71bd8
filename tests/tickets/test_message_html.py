"""The message HTML viewer and attachment downloads: permissions and the headers that make them safe."""
from __future__ import annotations

import re
import struct
import time
import zlib

import pytest
from django.core import signing

from conversations.models import Message
from conversations.services import IncomingAttachment, attachments_store
from tests.factories import InboxFactory, MessageFactory, TicketFactory, UserFactory
from tickets.views import CID_TOKEN_SALT

pytestmark = pytest.mark.django_db

VIEWER_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
VIEWER_CSP_REMOTE = "default-src 'none'; img-src 'self' data: https: http:; style-src 'unsafe-inline'; sandbox"


def png_bytes() -> bytes:
    """A real 1x1 PNG (libmagic detects the type from the content)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b"")


@pytest.fixture
def agent():
    return UserFactory(username="alice")


@pytest.fixture
def message(agent):
    inbox = InboxFactory()
    inbox.members.add(agent)
    ticket = TicketFactory(conversation__inbox=inbox)
    message = MessageFactory(
        conversation=ticket.conversation,
        text="see logo",
        html='<p>Hello <img src="cid:logo@mail"> <img src="https://tracker.test/pixel.gif"> <a href="https://acme.test/">site</a></p>',
    )
    attachments_store(message=message, attachments=(
        IncomingAttachment(filename="logo.png", content=png_bytes(), content_id="<logo@mail>"),
        IncomingAttachment(filename="page.html", content=b"<!doctype html><html><body><script>alert(1)</script></body></html>"),
        IncomingAttachment(filename="pic.svg", content=b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        IncomingAttachment(filename="notes.txt", content=b"plain words"),
    ))
    return message


def attachment(message: Message, filename: str):
    return message.attachments.get(filename=filename)


def cid_src(page: str) -> str:
    return re.search(r'<img src="(/attachments/[^"]+)">', page).group(1).replace("&amp;", "&")


# The viewer --------------------------------------------------------------------------------

def test_viewer_serves_the_html_under_a_sandboxing_csp(agent_client, message):
    response = agent_client.get(f"/messages/{message.pk}/html")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Content-Security-Policy"] == VIEWER_CSP
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["X-Frame-Options"] == "SAMEORIGIN"  # only the dashboard may frame it
    page = response.content.decode()
    assert page.startswith("<!doctype html>")
    assert "tracker.test" not in page  # a remote image is not even referenced: nothing to fetch
    assert '<a href="https://acme.test/" rel="noopener noreferrer">site</a>' in page


def test_viewer_allows_remote_images_only_when_asked(agent_client, message):
    response = agent_client.get(f"/messages/{message.pk}/html?remote=1")

    assert response["Content-Security-Policy"] == VIEWER_CSP_REMOTE
    assert '<img src="https://tracker.test/pixel.gif">' in response.content.decode()


def test_viewer_drops_relative_image_sources(agent_client, message):
    # An email has no business making the agent's browser fetch the desk's own URLs.
    Message.objects.filter(pk=message.pk).update(html='<img src="/c/1/timeline"><img src="//evil.test/x.gif">')

    for url in (f"/messages/{message.pk}/html", f"/messages/{message.pk}/html?remote=1"):
        body = agent_client.get(url).content.decode().split("<body>", 1)[1]
        assert "/c/1/timeline" not in body and "evil.test" not in body


def test_viewer_sanitises_again_whatever_is_stored(agent_client, message):
    Message.objects.filter(pk=message.pk).update(
        html='<p onclick="steal()">hi</p><script>window.top.pwned=1</script><a href="javascript:alert(1)">x</a><iframe src="/"></iframe>'
    )

    page = agent_client.get(f"/messages/{message.pk}/html").content.decode()

    body = page.split("<body>", 1)[1]
    assert "<script" not in body and "onclick" not in body and "javascript:" not in body and "<iframe" not in body
    assert "<p>hi</p>" in body


def test_viewer_points_cid_images_at_signed_attachment_urls(agent_client, message):
    page = agent_client.get(f"/messages/{message.pk}/html").content.decode()

    logo = attachment(message, "logo.png")
    src = cid_src(page)
    assert src.startswith(f"/attachments/{logo.uuid}/?t=")
    assert "cid:" not in page


def test_viewer_drops_cid_references_without_an_attachment(agent_client, message):
    Message.objects.filter(pk=message.pk).update(html='<p><img src="cid:missing@mail"></p>')

    page = agent_client.get(f"/messages/{message.pk}/html").content.decode()

    assert '<img src="">' in page


def test_viewer_of_a_message_without_html_is_404(agent_client, message):
    Message.objects.filter(pk=message.pk).update(html="")

    assert agent_client.get(f"/messages/{message.pk}/html").status_code == 404


def test_viewer_is_404_for_an_agent_of_another_inbox(client, message):
    client.force_login(UserFactory(username="mallory"))

    assert client.get(f"/messages/{message.pk}/html").status_code == 404
    assert client.get("/messages/999999/html").status_code == 404


def test_viewer_needs_a_login(client, message):
    response = client.get(f"/messages/{message.pk}/html")

    assert response.status_code == 302 and response["Location"].startswith("/login/")


# Attachments -------------------------------------------------------------------------------

def test_signed_cid_url_serves_a_raster_image_inline_without_a_session(agent_client, client, message):
    src = cid_src(agent_client.get(f"/messages/{message.pk}/html").content.decode())
    client.logout()  # the sandboxed iframe has no cookies: the token alone must do

    response = client.get(src)

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'inline; filename="logo.png"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"
    assert b"".join(response.streaming_content) == png_bytes()


def test_session_download_is_always_an_attachment(agent_client, message):
    logo = attachment(message, "logo.png")

    response = agent_client.get(f"/attachments/{logo.uuid}/")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'attachment; filename="logo.png"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"


@pytest.mark.parametrize("filename", ["page.html", "pic.svg"])
def test_html_and_svg_are_never_served_as_themselves(agent_client, message, filename):
    item = attachment(message, filename)
    assert item.content_type in ("text/html", "image/svg+xml")  # what libmagic detected
    token = signing.TimestampSigner(salt=CID_TOKEN_SALT).sign(item.uuid.hex)

    for response in (agent_client.get(f"/attachments/{item.uuid}/"), agent_client.get(f"/attachments/{item.uuid}/?t={token}")):
        assert response["Content-Type"] == "application/octet-stream"
        assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
        assert response["Content-Security-Policy"] == "sandbox"


def test_non_image_with_a_token_is_still_an_attachment(client, message):
    item = attachment(message, "notes.txt")
    token = signing.TimestampSigner(salt=CID_TOKEN_SALT).sign(item.uuid.hex)

    response = client.get(f"/attachments/{item.uuid}/?t={token}")

    assert response["Content-Type"] == "text/plain"
    assert response["Content-Disposition"] == 'attachment; filename="notes.txt"'


class SignerOf11MinutesAgo(signing.TimestampSigner):
    def timestamp(self) -> str:
        return signing.b62_encode(int(time.time()) - 11 * 60)


def test_expired_token_is_refused(client, message):
    logo = attachment(message, "logo.png")
    old_token = SignerOf11MinutesAgo(salt=CID_TOKEN_SALT).sign(logo.uuid.hex)

    response = client.get(f"/attachments/{logo.uuid}/?t={old_token}")

    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_token_of_one_attachment_does_not_open_another(client, message):
    logo, notes = attachment(message, "logo.png"), attachment(message, "notes.txt")
    token = signing.TimestampSigner(salt=CID_TOKEN_SALT).sign(logo.uuid.hex)

    assert client.get(f"/attachments/{notes.uuid}/?t={token}").status_code == 302
    assert client.get(f"/attachments/{logo.uuid}/?t=forged").status_code == 302


def test_attachment_is_404_for_an_agent_of_another_inbox(client, message):
    client.force_login(UserFactory(username="mallory"))
    logo = attachment(message, "logo.png")

    assert client.get(f"/attachments/{logo.uuid}/").status_code == 404
    assert client.get("/attachments/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_attachment_without_session_or_token_goes_to_login(client, message):
    logo = attachment(message, "logo.png")

    response = client.get(f"/attachments/{logo.uuid}/")

    assert response.status_code == 302 and response["Location"].startswith("/login/")

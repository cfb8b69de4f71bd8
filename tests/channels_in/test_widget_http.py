"""The widget's HTTP API: sessions, identity proofs, messages, files, and who may read what."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from unittest import mock

import jwt
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core import signing

from channels_in import widget
from channels_in.models import EmailChannel, Visitor, WebChatChannel
from conversations.models import Channel, Contact, ContactIdentity, Conversation, Inbox, Message
from conversations.services import reply_create
from tests.factories import ContactFactory, UserFactory

# The application as served: its startup connects the widget's CORS check (the CORS answer
# comes from middleware, before any URL is resolved).
import helpdesk.asgi  # noqa: F401  isort: skip
from tickets.models import BusinessCalendar, Ticket

SITE = "https://shop.example"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")  # a PNG header: libmagic says image/png

pytestmark = pytest.mark.django_db


# Shared by the other widget test modules ------------------------------------------------

def make_webchat(*, origins: str = SITE, email_address: str | None = "support@acme.test", **fields: object) -> WebChatChannel:
    """A web chat inbox with an EmailChannel too, as offline continuity needs."""
    inbox = Inbox.objects.create(name=f"Chat {uuid.uuid4().hex[:6]}", kind=Channel.WEBCHAT)
    if email_address:
        EmailChannel.objects.create(inbox=inbox, address=email_address, from_name="Acme Support")
    return WebChatChannel.objects.create(inbox=inbox, allowed_origins=origins, **fields)


@contextmanager
def clock_at(epoch: float):
    """Signers read time.time(): sign something as if it were then."""
    with mock.patch("django.core.signing.time.time", return_value=epoch):
        yield


def api(client, channel: WebChatChannel, method: str, path: str, body: object = None, *, token: str | None = None,
        origin: str | None = SITE, raw: bytes | None = None):
    headers = {}
    if origin is not None:
        headers["Origin"] = origin
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = f"/widget/api/{channel.public_key}/{path}"
    if method == "GET":
        return client.get(url, headers=headers)
    data = raw if raw is not None else (json.dumps(body) if body is not None else "")
    return client.post(url, data=data, content_type="application/json", headers=headers)


def new_session(client, channel: WebChatChannel, **body: object) -> dict:
    response = api(client, channel, "POST", "session", body)
    assert response.status_code == 200, response.content
    return response.json()


def send(client, channel: WebChatChannel, token: str, text: str, client_id: str | None = None):
    return api(client, channel, "POST", "messages", {"text": text, "client_id": client_id or str(uuid.uuid4())}, token=token)


def jwt_for(channel: WebChatChannel, sub: object, *, ttl: int = 600, secret: str | None = None, **claims: object) -> str:
    payload = {"sub": sub, "exp": int(time.time()) + ttl, **claims}
    return jwt.encode(payload, secret or channel.identity_secret, algorithm="HS256")


def user_hash(channel: WebChatChannel, user_id: str) -> str:
    return hmac.new(channel.identity_secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def chat() -> WebChatChannel:
    return make_webchat()


# Config and CORS ------------------------------------------------------------------------

def test_config_says_when_we_reply(client, chat) -> None:
    response = api(client, chat, "GET", "config")
    assert response.status_code == 200
    body = response.json()
    assert body["reply_time"] == {"open": True, "text": "We typically reply within 1 hour"}
    assert body["max_upload_bytes"] > 0 and body["name"] == chat.inbox.name
    assert api(client, chat, "GET", "config", origin="https://evil.example").status_code == 403
    assert client.get("/widget/api/no-such-key/config").status_code == 404


def test_config_outside_business_hours_says_when_we_are_back(chat) -> None:
    chat.calendar = BusinessCalendar.objects.create(
        name="Berlin", time_zone="Europe/Berlin", intervals=[{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(5)]
    )
    chat.reply_time_minutes = 90
    saturday_noon = datetime(2026, 11, 21, 11, 0, tzinfo=UTC)
    assert widget.reply_time(channel=chat, now=saturday_noon) == {"open": False, "text": "We're away — back Monday 09:00 (Europe/Berlin)"}
    tuesday_ten = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert widget.reply_time(channel=chat, now=tuesday_ten) == {"open": True, "text": "We typically reply within 1 hour 30 minutes"}


def test_cors_answers_only_the_inbox_sites(client, chat, settings) -> None:
    url = f"/widget/api/{chat.public_key}/session"
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
    allowed = client.options(url, headers={"Origin": SITE, **preflight})
    assert allowed["Access-Control-Allow-Origin"] == SITE
    assert "authorization" in allowed["Access-Control-Allow-Headers"]
    foreign = client.options(url, headers={"Origin": "https://evil.example", **preflight})
    assert "Access-Control-Allow-Origin" not in foreign
    desk = client.options(url, headers={"Origin": settings.SITE_URL, **preflight})
    assert desk["Access-Control-Allow-Origin"] == settings.SITE_URL
    anywhere = make_webchat(origins="*", email_address=None)
    response = client.options(f"/widget/api/{anywhere.public_key}/session", headers={"Origin": "https://any.example", **preflight})
    assert response["Access-Control-Allow-Origin"] == "https://any.example"
    # Not a widget path: never answered.
    assert "Access-Control-Allow-Origin" not in client.options("/api/", headers={"Origin": SITE, **preflight})


# Sessions and tokens --------------------------------------------------------------------

def test_a_returning_visitor_keeps_history_with_a_fresh_token(client, chat) -> None:
    first = new_session(client, chat, name="Ada", email="ada@example.org")
    assert first["conversation_id"] is None and first["messages"] == []
    assert first["visitor"]["name"] == "Ada"
    assert send(client, chat, first["token"], "Where is my order?").status_code == 201
    with clock_at(time.time() + 5):
        again = new_session(client, chat, token=first["token"])
    assert again["visitor"]["id"] == first["visitor"]["id"]
    assert again["token"] != first["token"]
    assert [m["text"] for m in again["messages"]] == ["Where is my order?"]
    assert again["conversation_id"] == Conversation.objects.get().pk
    assert Ticket.objects.filter(pk=again["conversation_id"]).exists()


def test_expired_forged_and_foreign_tokens_are_refused(client, chat, settings) -> None:
    visitor_token = new_session(client, chat)["token"]
    with clock_at(time.time() - settings.WIDGET_TOKEN_MAX_AGE_SECONDS - 60):
        expired = widget.visitor_token(visitor=Visitor.objects.get())
    forged = visitor_token[:-1] + ("A" if visitor_token[-1] != "A" else "B")
    other = make_webchat(email_address=None)
    for token, reason in [(expired, "expired"), (forged, "not valid")]:
        for response in (api(client, chat, "POST", "session", {"token": token}), api(client, chat, "GET", "messages", token=token)):
            assert response.status_code == 403
            assert reason in response.json()["error"]
    response = api(client, other, "GET", "messages", token=visitor_token)
    assert response.status_code == 403 and "another widget" in response.json()["error"]
    assert api(client, chat, "GET", "messages").status_code == 403  # no token at all
    assert Visitor.objects.count() == 1


def test_token_fits_the_websocket_subprotocol_alphabet(chat) -> None:
    visitor = widget.visitor_session(channel=chat)
    token = widget.visitor_token(visitor=visitor)
    tchar = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert token and set(token) <= tchar


# Identity -------------------------------------------------------------------------------

@pytest.mark.parametrize("proof", ["jwt", "user_hash"])
def test_a_proven_user_has_one_history_across_devices(client, chat, proof: str) -> None:
    def identity() -> dict:
        if proof == "jwt":
            return {"jwt": jwt_for(chat, "user-42", name="Grace", email="grace@example.org")}
        return {"user_id": "user-42", "user_hash": user_hash(chat, "user-42"), "name": "Grace"}

    laptop = new_session(client, chat, identity=identity())
    assert send(client, chat, laptop["token"], "Hi from my laptop").status_code == 201
    phone = new_session(client, chat, identity=identity())
    assert phone["visitor"]["id"] != laptop["visitor"]["id"]
    assert phone["conversation_id"] == laptop_conversation(laptop["token"], chat)
    assert [m["text"] for m in phone["messages"]] == ["Hi from my laptop"]
    assert send(client, chat, phone["token"], "and now from my phone").status_code == 201
    history = api(client, chat, "GET", "messages", token=laptop["token"]).json()["messages"]
    assert [m["text"] for m in history] == ["Hi from my laptop", "and now from my phone"]
    identity_row = ContactIdentity.objects.get(kind=ContactIdentity.Kind.EXTERNAL)
    assert identity_row.address == f"{chat.inbox_id}:user-42"
    assert Conversation.objects.get().contact_id == identity_row.contact_id
    # Only the signed JWT may vouch for an email address.
    assert identity_row.contact.email == ("grace@example.org" if proof == "jwt" else "")


def test_a_numeric_sub_names_the_same_user_as_its_string(client, chat) -> None:
    first = new_session(client, chat, identity={"jwt": jwt_for(chat, 42)})
    second = new_session(client, chat, identity={"user_id": "42", "user_hash": user_hash(chat, "42")})
    assert first["visitor"]["id"] != second["visitor"]["id"]
    assert ContactIdentity.objects.filter(kind="external").get().address == f"{chat.inbox_id}:42"
    assert Visitor.objects.get(uuid=first["visitor"]["id"]).contact_id == Visitor.objects.get(uuid=second["visitor"]["id"]).contact_id


def laptop_conversation(token: str, chat: WebChatChannel) -> int:
    return widget.visitor_from_token(channel=chat, token=token).conversation_id


@pytest.mark.parametrize(
    "make_identity, reason",
    [
        (lambda c: {"user_id": "user-42", "user_hash": user_hash(c, "user-43")}, "does not match"),
        (lambda c: {"user_id": "user-42"}, "both user_id and user_hash"),
        (lambda c: {"jwt": jwt_for(c, "user-42", secret="not-the-secret-but-just-as-long-as-one-0123")}, "not valid"),
        (lambda c: {"jwt": jwt_for(c, "user-42", ttl=-3600)}, "expired"),
        (lambda c: {"jwt": jwt.encode({"sub": "user-42"}, c.identity_secret, algorithm="HS256")}, "exp"),
        (lambda c: {"jwt": jwt_for(c, "user-42", ttl=30 * 24 * 3600)}, "lives too long"),
        (lambda c: {"jwt": jwt_for(c, "")}, "sub must be"),
        (lambda c: {"jwt": jwt_for(c, {"id": 42})}, "sub must be"),
        (lambda c: {"jwt": jwt.encode({"sub": "user-42", "exp": int(time.time()) + 60}, "", algorithm="none")}, "not valid"),
    ],
)
def test_a_bad_identity_proof_is_refused_and_claims_nothing(client, chat, make_identity, reason: str) -> None:
    victim = new_session(client, chat, identity={"jwt": jwt_for(chat, "user-42")})
    send(client, chat, victim["token"], "my private order details")
    visitors = Visitor.objects.count()
    response = api(client, chat, "POST", "session", {"identity": make_identity(chat)})
    assert response.status_code == 403
    assert reason in response.json()["error"]
    assert Visitor.objects.count() == visitors


def test_a_token_from_a_proven_session_does_not_reopen_it_without_proof(client, chat) -> None:
    proven = new_session(client, chat, identity={"jwt": jwt_for(chat, "user-42")})
    send(client, chat, proven["token"], "my private order details")
    anonymous = new_session(client, chat, token=proven["token"])
    assert anonymous["visitor"]["id"] != proven["visitor"]["id"]
    assert anonymous["conversation_id"] is None and anonymous["messages"] == []


def test_a_pre_chat_email_never_links_to_an_existing_contact(client, chat) -> None:
    jane = ContactFactory(email="jane@example.org")
    session = new_session(client, chat, name="Not Jane", email="Jane@Example.org")
    assert send(client, chat, session["token"], "Show me my tickets").status_code == 201
    conversation = Conversation.objects.get()
    assert conversation.contact_id != jane.pk
    assert conversation.contact.email == "jane@example.org"  # display and offline-reply address only
    assert list(ContactIdentity.objects.filter(kind="email").values_list("contact_id", flat=True)) == [jane.pk]
    assert Visitor.objects.get().email == "jane@example.org"
    assert api(client, chat, "POST", "session", {"email": "not an email"}).status_code == 400


# Messages -------------------------------------------------------------------------------

def test_client_id_dedupes_and_cannot_read_another_visitors_message(client, chat) -> None:
    ada, bob = new_session(client, chat)["token"], new_session(client, chat)["token"]
    client_id = str(uuid.uuid4())
    first = send(client, chat, ada, "my card ends 4242", client_id)
    assert first.status_code == 201
    again = send(client, chat, ada, "my card ends 4242", client_id)
    assert again.status_code == 200 and again.json()["message"]["id"] == first.json()["message"]["id"]
    assert first.json()["message"]["client_id"] == client_id and first.json()["message"]["direction"] == "in"
    stolen = send(client, chat, bob, "anything", client_id)
    assert stolen.status_code == 409
    assert "4242" not in stolen.content.decode()
    assert Message.objects.filter(channel=Channel.WEBCHAT).count() == 1


def test_message_limits(client, chat, settings) -> None:
    token = new_session(client, chat)["token"]
    settings.WIDGET_MAX_MESSAGE_CHARS = 20
    cases = [
        ({"text": "   ", "client_id": str(uuid.uuid4())}, "needs some text"),
        ({"text": "x" * 21, "client_id": str(uuid.uuid4())}, "longer than 20"),
        ({"text": "hello", "client_id": "not-a-uuid"}, "UUID"),
        ({"text": 42, "client_id": str(uuid.uuid4())}, "string"),
    ]
    for body, reason in cases:
        response = api(client, chat, "POST", "messages", body, token=token)
        assert response.status_code == 400 and reason in response.json()["error"], body
    response = api(client, chat, "POST", "messages", token=token, raw=b"{not json")
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    settings.ATTACHMENT_MAX_BYTES = 100
    response = client.post(
        f"/widget/api/{chat.public_key}/attachments",
        {"file": _upload("big.bin", b"x" * 101), "client_id": str(uuid.uuid4())},
        headers={"Authorization": f"Bearer {token}", "Origin": SITE},
    )
    assert response.status_code == 413 and "100 byte limit" in response.json()["error"]
    assert not Message.objects.exists()


def test_pre_chat_email_required_before_the_first_message(client) -> None:
    strict = make_webchat(pre_chat_email_required=True)
    token = new_session(client, strict)["token"]
    response = send(client, strict, token, "hello")
    assert response.status_code == 400 and "email" in response.json()["error"]
    token = new_session(client, strict, token=token, email="ok@example.org")["token"]
    assert send(client, strict, token, "hello").status_code == 201


def _upload(name: str, content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content)


# Isolation: one visitor never reads another's conversation ------------------------------

@pytest.fixture
def two_visitors(client, chat):
    ada = new_session(client, chat, name="Ada")["token"]
    bob = new_session(client, chat, name="Bob")["token"]
    send(client, chat, ada, "Ada's secret")
    send(client, chat, bob, "Bob's question")
    ada_conversation = widget.visitor_from_token(channel=chat, token=ada).conversation
    bob_conversation = widget.visitor_from_token(channel=chat, token=bob).conversation
    assert ada_conversation.pk != bob_conversation.pk
    return ada, bob, ada_conversation, bob_conversation


def test_http_fallback_shows_a_visitor_only_their_own_conversation(client, chat, two_visitors) -> None:
    ada, bob, ada_conversation, bob_conversation = two_visitors
    reply_create(conversation=ada_conversation, author=UserFactory(), text="Ada, here is your refund", channel=Channel.WEBCHAT)
    Message.objects.create(conversation=bob_conversation, kind=Message.Kind.NOTE, channel=Channel.INTERNAL, text="internal: bob is rude")
    bob_sees = api(client, chat, "GET", "messages?after=0", token=bob).json()["messages"]
    assert [m["text"] for m in bob_sees] == ["Bob's question"]  # no notes, nothing of Ada's
    ada_sees = api(client, chat, "GET", "messages", token=ada).json()["messages"]
    assert [(m["direction"], m["text"]) for m in ada_sees] == [("in", "Ada's secret"), ("out", "Ada, here is your refund")]
    after = api(client, chat, "GET", f"messages?after={ada_sees[0]['id']}", token=ada).json()["messages"]
    assert [m["text"] for m in after] == ["Ada, here is your refund"]
    # Bob posts: it lands in Bob's conversation, whatever he tries.
    send(client, chat, bob, "second")
    assert list(ada_conversation.messages.filter(kind="inbound").values_list("text", flat=True)) == ["Ada's secret"]
    # Bob marks Ada's message seen: refused, Ada's conversation untouched.
    ada_message = ada_conversation.messages.filter(kind="outbound").get()
    response = api(client, chat, "POST", "seen", {"message_id": ada_message.pk}, token=bob)
    assert response.status_code == 404
    ada_conversation.refresh_from_db()
    assert ada_conversation.contact_last_seen_at is None


def layer_receive(channel_name: str, timeout: float = 2.0) -> dict:
    layer = get_channel_layer()

    async def receive() -> dict:
        return await asyncio.wait_for(layer.receive(channel_name), timeout)

    return async_to_sync(receive)()


def test_typing_reaches_only_the_visitors_own_conversation(client, chat, two_visitors, django_capture_on_commit_callbacks) -> None:
    _ada, bob, _ada_conversation, bob_conversation = two_visitors
    layer = get_channel_layer()
    listener = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(f"inbox.{chat.inbox_id}", listener)
    with django_capture_on_commit_callbacks(execute=True):
        assert api(client, chat, "POST", "typing", {"typing": True}, token=bob).status_code == 204
    event = layer_receive(listener)
    assert event == {"type": "desk.typing", "conversation_id": bob_conversation.pk, "typing": True,
                     "who": "visitor", "user_id": None, "name": "Bob"}


def test_seen_marks_agent_replies_read(client, chat, two_visitors, tasks, django_capture_on_commit_callbacks) -> None:
    ada, _bob, ada_conversation, _ = two_visitors
    with django_capture_on_commit_callbacks(execute=True):
        first = reply_create(conversation=ada_conversation, author=UserFactory(), text="one", channel=Channel.WEBCHAT)
        second = reply_create(conversation=ada_conversation, author=UserFactory(), text="two", channel=Channel.WEBCHAT)
    Visitor.objects.update(online_until=datetime(2100, 1, 1, tzinfo=UTC))  # online: no email copy
    tasks.drain()
    assert set(Message.objects.filter(pk__in=[first.pk, second.pk]).values_list("delivery_status", flat=True)) == {"sent"}
    assert api(client, chat, "POST", "seen", {"message_id": first.pk}, token=ada).status_code == 204
    for row in (first, second, ada_conversation):
        row.refresh_from_db()
    assert (first.delivery_status, second.delivery_status) == ("read", "sent")
    assert ada_conversation.contact_last_seen_at is not None


def test_attachment_links_are_signed_short_lived_and_per_file(client, chat, two_visitors, settings) -> None:
    ada, bob, _, _ = two_visitors
    upload = client.post(
        f"/widget/api/{chat.public_key}/attachments",
        {"file": _upload("photo.png", PNG), "client_id": str(uuid.uuid4())},
        headers={"Authorization": f"Bearer {ada}", "Origin": SITE},
    )
    assert upload.status_code == 201, upload.content
    (attachment,) = upload.json()["message"]["attachments"]
    assert attachment["content_type"] == "image/png" and attachment["name"] == "photo.png"
    url = attachment["url"].removeprefix(settings.SITE_URL)
    shown = client.get(url)
    assert shown.status_code == 200 and b"".join(shown.streaming_content) == PNG
    assert shown["Content-Type"] == "image/png"
    assert shown["X-Content-Type-Options"] == "nosniff" and shown["Content-Security-Policy"].startswith("sandbox")
    # Bob never sees the link, and cannot make one: no sig, a tampered sig, or his own
    # file's sig on Ada's file are all refused.
    bob_view = json.dumps(api(client, chat, "GET", "messages", token=bob).json())
    assert attachment["url"] not in bob_view
    path, _, sig = url.partition("?sig=")
    bob_upload = client.post(
        f"/widget/api/{chat.public_key}/attachments",
        {"file": _upload("mine.txt", b"hello"), "client_id": str(uuid.uuid4())},
        headers={"Authorization": f"Bearer {bob}", "Origin": SITE},
    ).json()["message"]["attachments"][0]
    bob_sig = bob_upload["url"].partition("?sig=")[2]
    for bad in (path, f"{path}?sig={sig[:-1]}{'A' if sig[-1] != 'A' else 'B'}", f"{path}?sig={bob_sig}"):
        assert client.get(bad).status_code == 403, bad
    # Another inbox's key does not serve this inbox's files.
    other = make_webchat(email_address=None)
    assert client.get(url.replace(chat.public_key, other.public_key)).status_code == 404
    # Links expire.
    stored = Message.objects.get(attachments__isnull=False, conversation__visitors__name="Ada").attachments.get()
    with clock_at(time.time() - widget.FILE_URL_MAX_AGE_SECONDS - 60):
        old = widget.attachment_url(channel=chat, attachment=stored).removeprefix(settings.SITE_URL)
    response = client.get(old)
    assert response.status_code == 403 and "expired" in response.json()["error"]


def test_html_and_svg_files_are_never_served_inline(client, chat, two_visitors, settings) -> None:
    ada = two_visitors[0]
    for name, content in [("page.html", b"<html><script>alert(1)</script></html>"),
                          ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')]:
        message = client.post(
            f"/widget/api/{chat.public_key}/attachments",
            {"file": _upload(name, content), "client_id": str(uuid.uuid4())},
            headers={"Authorization": f"Bearer {ada}", "Origin": SITE},
        ).json()["message"]
        response = client.get(message["attachments"][0]["url"].removeprefix(settings.SITE_URL))
        assert response.status_code == 200
        assert response["Content-Type"] == "application/octet-stream"
        assert response["Content-Disposition"].startswith("attachment")
        assert response["X-Content-Type-Options"] == "nosniff" and "sandbox" in response["Content-Security-Policy"]


def test_a_token_from_the_desk_signer_elsewhere_is_not_a_visitor_token(client, chat) -> None:
    visitor = widget.visitor_session(channel=chat)
    # Same payload, signed for another purpose (another salt): refused.
    other_purpose = signing.TimestampSigner(salt="something.else", sep=".").sign_object({"v": visitor.uuid.hex, "k": chat.pk})
    assert api(client, chat, "GET", "messages", token=other_purpose).status_code == 403
    assert Contact.objects.count() == 1


def test_preview_page_embeds_only_the_snippet_and_needs_no_login(client):
    channel = make_webchat()

    response = client.get(f"/widget/preview/{channel.public_key}/")

    assert response.status_code == 200
    assert f'<script src="http://testserver/static/widget/widget.js" data-key="{channel.public_key}" async></script>' in response.content.decode()
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert client.get("/widget/preview/no-such-key/").status_code == 404


def test_a_known_sites_list_is_answered_from_memory_and_refreshed_in_the_background(chat, monkeypatch) -> None:
    # Under ASGI the CORS check runs in the event loop: once a key is known, it must never wait
    # for the database there, even when its list is due for a refresh.
    from channels_in import widget_views

    monkeypatch.setattr(widget_views, "_origins_cache", {})
    assert widget_views._origins_for_key(chat.public_key) == chat.origins  # outside a loop: looked up at once
    refreshed = threading.Event()
    real_refresh = widget_views._origins_refresh

    def refresh(key: str) -> None:
        real_refresh(key)
        refreshed.set()

    monkeypatch.setattr(widget_views, "_origins_refresh", refresh)
    monkeypatch.setattr(widget_views, "_origins_query", lambda key: pytest.fail("queried in the event loop's thread"))
    monkeypatch.setattr(widget_views, "_origins_query_closing", lambda key: ["https://new.example"])
    expires, origins = widget_views._origins_cache[chat.public_key]
    widget_views._origins_cache[chat.public_key] = (expires - widget_views._ORIGINS_TTL_SECONDS - 1, origins)

    async def in_the_event_loop() -> list[str] | None:
        return widget_views._origins_for_key(chat.public_key)

    assert asyncio.run(in_the_event_loop()) == origins  # the stale list, at once
    assert refreshed.wait(5)
    assert asyncio.run(in_the_event_loop()) == ["https://new.example"]

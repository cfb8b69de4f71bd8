"""The dashboard in a real browser: live updates, the formatted-mail sandbox, catch-up after a drop."""
from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from channels_in.models import InboundEvent
from channels_in.services import inbound_event_process
from conversations.models import Event, Message
from conversations.services import note_create
from tests.browser.helpers import PixelCounter, in_thread, login, wait_until
from tests.factories import ContactFactory, EmailChannelFactory, MessageFactory, TicketFactory, UserFactory
from tests.providers import basic_auth_header, build_email, mailgun_mime_post, postmark_inbound_json
from tests.tickets.test_message_html import png_bytes

pytestmark = pytest.mark.browser


def post_webhook(base: str, path: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(f"{base}{path}", data=body, method="POST",
                                     headers={"Content-Type": content_type, "Authorization": basic_auth_header()})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def post_postmark(base: str, email) -> None:  # noqa: ANN001
    assert post_webhook(base, "/anymail/postmark/inbound/", json.dumps(postmark_inbound_json(email)).encode(), "application/json") == 200


def post_mailgun(base: str, email) -> None:  # noqa: ANN001
    body = urllib.parse.urlencode(mailgun_mime_post(email)).encode()
    assert post_webhook(base, "/anymail/mailgun/inbound_mime/", body, "application/x-www-form-urlencoded") == 200


def process_stored_events() -> list[Message]:
    """What the inbound worker does with the events the server stored (pushes via Redis)."""
    pending = InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).order_by("id").values_list("id", flat=True)
    return [inbound_event_process(event_id=event_id) for event_id in list(pending)]


@pytest.fixture
def agent(db):  # noqa: ANN001
    channel = EmailChannelFactory(address="support@acme.test", inbox__name="Support")
    agent = UserFactory(username="alice", first_name="Alice", last_name="Agent")
    channel.inbox.members.add(agent)
    return agent


def test_new_email_appears_in_list_and_open_timeline_without_reload(page: Page, asgi_server: str, agent):
    post_postmark(asgi_server, build_email(subject="Printer on fire", message_id="<first@mail.example.org>",
                                           text="My printer is on fire."))
    [first] = in_thread(process_stored_events)
    login(page, "alice")
    page.click(f"a[data-conversation='{first.conversation_id}']")
    expect(page.locator("#timeline")).to_contain_text("My printer is on fire.")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    page.evaluate("window.__sameDocument = true")

    post_postmark(asgi_server, build_email(subject="Re: Printer on fire", in_reply_to="<first@mail.example.org>",
                                           text="Any update? It is still burning."))
    post_postmark(asgi_server, build_email(sender="Bob Buyer <bob@example.org>", subject="Invoice question",
                                           text="Where is my invoice?"))
    reply, other = in_thread(process_stored_events)

    assert reply.conversation_id == first.conversation_id and other.conversation_id != first.conversation_id
    new_item = page.locator(f"#m-{reply.pk}")
    expect(new_item).to_contain_text("Any update? It is still burning.")
    expect(new_item).to_contain_text("threaded by: In-Reply-To header")
    expect(page.locator(f".conv-item[data-conversation-id='{other.conversation_id}']")).to_contain_text("Invoice question")
    expect(page.locator(f".conv-item[data-conversation-id='{first.conversation_id}'] .preview")).to_contain_text("Any update?")
    expect(page.locator(f".conv-item[data-conversation-id='{first.conversation_id}']")).to_have_class("conv-item is-selected")
    assert page.evaluate("window.__sameDocument") is True
    assert navigations == []
    assert page.evaluate("window.desk.lastSeq") == Event.objects.order_by("-id").values_list("id", flat=True).first()


def test_formatted_view_runs_no_script_and_loads_no_remote_image(page: Page, asgi_server: str, agent, tracker: PixelCounter,
                                                                  server_media):
    pixel = f"http://127.0.0.1:{tracker.port}/pixel.gif?recipient=jane"
    hostile = f"""<html><head><script>window.top.pwned = 1; document.title = "pwned";</script></head>
<body onload="window.top.pwned = 2; alert('onload')">
<p>Hello, this is <b>formatted</b> mail.</p>
<script>window.pwned = 3; alert("script")</script>
<img src="x" onerror="window.top.pwned = 4; alert('onerror')">
<svg onload="window.top.pwned = 5"><circle r="1"/></svg>
<a id="js-link" href="javascript:window.top.pwned = 6; alert('link')">click me</a>
<iframe src="javascript:alert('frame')"></iframe>
<img id="logo" src="cid:logo@acme.test" alt="logo">
<img id="pixel" src="{pixel}" width="1" height="1">
</body></html>"""
    post_mailgun(asgi_server, build_email(subject="Newsletter", text="Hello, plain version.", html=hostile,
                                          inline_images=[("logo@acme.test", png_bytes())]))
    [message] = in_thread(process_stored_events)
    dialogs: list[str] = []
    requests: list[str] = []
    responses: dict[str, tuple[int, str]] = {}
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("request", lambda request: requests.append(request.url))
    page.on("response", lambda response: responses.__setitem__(response.url, (response.status, response.headers.get("content-type", ""))))
    login(page, "alice")
    page.click(f"a[data-conversation='{message.conversation_id}']")

    page.click(f"#m-{message.pk} [data-action=toggle-html]")

    iframe = page.locator(f"#m-{message.pk} .html-view iframe")
    assert iframe.get_attribute("sandbox") == ""
    frame = page.frame_locator(f"#m-{message.pk} .html-view iframe")
    expect(frame.locator("body")).to_contain_text("Hello, this is formatted mail.")
    # The inline image came through its signed URL, though the sandboxed frame sends no cookie.
    expect(frame.locator("img[alt=logo]")).to_have_attribute("src", re.compile(r"^/attachments/[0-9a-f-]+/\?t="))
    wait_until(lambda: any("/attachments/" in url and status == 200 and ctype == "image/png"
                           for url, (status, ctype) in list(responses.items())), timeout=5, what="the cid image", page=page)
    frame.get_by_text("click me").click()
    page.wait_for_timeout(300)  # give any handler that survived a chance to fire

    assert dialogs == []
    for each in page.frames:
        assert each.evaluate("typeof window.pwned") == "undefined", each.url
    assert page.title().startswith("#") and "pwned" not in page.title()
    assert tracker.hits == []
    assert not [url for url in requests if f":{tracker.port}" in url]

    # The agent may still choose to load remote images, and then the tracker sees it:
    # proof the two checks above could have failed.
    page.click(f"#m-{message.pk} [data-action=load-remote]")
    # With the page, so that a dialog opened by the reloaded frame reaches `dialogs` below.
    wait_until(lambda: len(tracker.hits) == 1, timeout=5, what="the remote image after opting in", page=page)
    assert tracker.hits == ["/pixel.gif?recipient=jane"]
    assert dialogs == []


def test_event_missed_while_offline_appears_after_reconnect(page: Page, agent):
    bob = UserFactory(username="bob", first_name="Bob")
    ticket = TicketFactory(conversation__inbox=agent.inboxes.get(), conversation__contact=ContactFactory(name="Jane"),
                           conversation__subject="Refund please")
    MessageFactory(conversation=ticket.conversation, text="I want my money back.")
    login(page, "alice")
    page.click(f"a[data-conversation='{ticket.pk}']")
    expect(page.locator("#timeline")).to_contain_text("I want my money back.")

    page.evaluate("window.desk.disconnect()")
    expect(page.locator("#conn")).to_have_text("Offline")
    note = in_thread(note_create, conversation=ticket.conversation, author=bob, text="Refund approved by finance.")
    page.wait_for_timeout(700)
    expect(page.locator("#timeline")).not_to_contain_text("Refund approved by finance.")

    page.evaluate("window.desk.connect()")

    expect(page.locator("#conn")).to_have_text("Live")
    expect(page.locator(f"#m-{note.pk}")).to_contain_text("Refund approved by finance.")
    assert page.evaluate("window.desk.lastSeq") == Event.objects.get(message=note).id



def test_agent_replies_and_updates_the_ticket_from_the_page(page: Page, agent):
    bob = UserFactory(username="bob", first_name="Bob", last_name="Baker")
    agent.inboxes.get().members.add(bob)
    ticket = TicketFactory(conversation__inbox=agent.inboxes.get(), conversation__subject="Broken zipper")
    MessageFactory(conversation=ticket.conversation, text="The zipper broke on day one.")
    csp_violations: list[str] = []
    page.on("console", lambda msg: csp_violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    login(page, "alice")
    page.click(f"a[data-conversation='{ticket.pk}']")

    page.fill("#composer textarea", "Sorry about that, a replacement is on its way.")
    page.select_option("#composer select[name=status]", "pending")
    page.click("#composer button[data-mode=reply]")

    reply = page.locator("#timeline .msg-outbound")
    expect(reply).to_contain_text("Sorry about that, a replacement is on its way.")
    expect(reply.locator(".delivery")).to_have_text("Queued")
    expect(page.locator("#composer textarea")).to_have_value("")
    expect(page.locator(f".conv-item[data-conversation-id='{ticket.pk}'] .status")).to_have_text("Pending")

    page.check("#composer input[value=note]")
    page.fill("#composer textarea", "Replacement shipped with tracking 1Z999.")
    page.click("#composer button[data-mode=note]")
    expect(page.locator("#timeline .msg-note")).to_contain_text("Replacement shipped with tracking 1Z999.")

    page.select_option("#conv-head select[name=assignee]", str(bob.pk))
    expect(page.locator("#timeline .msg-system").last).to_have_text(re.compile("Alice Agent assigned the conversation to Bob Baker."))
    expect(page.locator(f".conv-item[data-conversation-id='{ticket.pk}'] .assignee")).to_have_text("Bob Baker")

    saved = Message.objects.filter(conversation=ticket.conversation).values_list("kind", "text")
    assert ("outbound", "Sorry about that, a replacement is on its way.") in saved
    assert ("note", "Replacement shipped with tracking 1Z999.") in saved
    assert csp_violations == []

"""The web chat widget in a real browser, on a customer's page from another origin.

The desk (uvicorn), a Celery worker (replies are delivered by the outbound task) and the
browser share the test database and one Redis, as in production. The host page is plain
HTML with only the script tag, served under a strict Content-Security-Policy that allows
nothing but the desk.
"""
from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, BrowserContext, Page, WebSocketRoute, expect

from channels_in.models import Visitor, WebChatChannel
from conversations.models import Channel, Message
from conversations.services import reply_create
from tests.browser.conftest import ATTACHMENT_MAX_BYTES
from tests.browser.helpers import HostSite, in_thread, login, wait_until
from tests.factories import EmailChannelFactory, UserFactory, WebChatChannelFactory
from tests.fakes.postmark import FakePostmark
from tests.providers import basic_auth_header, build_email, postmark_inbound_json
from tests.tickets.test_message_html import png_bytes

pytestmark = pytest.mark.browser

HOST_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Acme Kettles</title></head>
<body><script src="{desk}/static/widget/widget.js" data-key="{key}" async></script></body></html>
"""


def host_page(host_site: HostSite, desk: str, channel: WebChatChannel, path: str = "/shop.html", *, websockets: bool = True) -> str:
    """The customer's page: only our script tag, under a CSP that lets in nothing else."""
    ws = " ws://" + urlsplit(desk).netloc if websockets else ""
    csp = f"default-src 'none'; script-src {desk}; connect-src {desk}{ws}; img-src {desk}"
    return host_site.serve(path, HOST_PAGE.format(desk=desk, key=channel.public_key), Content_Security_Policy=csp)


@pytest.fixture
def contexts(browser: Browser, asgi_server: str, transactional_db, redis_layer) -> Iterator[list[BrowserContext]]:
    """Browser contexts opened by the test (visitor, agent); all closed afterwards."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def new_context(browser: Browser, contexts: list[BrowserContext], base_url: str | None = None) -> BrowserContext:
    context = browser.new_context(base_url=base_url)
    context.set_default_timeout(8000)
    contexts.append(context)
    return context


def console_problems(page: Page) -> list[str]:
    """CSP violations and script errors on the page, collected as they happen."""
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" or "Content Security Policy" in msg.text else None)
    page.on("pageerror", lambda err: problems.append(str(err)))
    return problems


def agent_page(browser: Browser, contexts: list[BrowserContext], asgi_server: str, username: str) -> Page:
    page = new_context(browser, contexts, asgi_server).new_page()
    login(page, username)
    return page


def agent_types(page: Page, text: str) -> None:
    """The agent starts a reply: the dashboard reports typing over its socket."""
    page.locator("#composer textarea").press_sequentially(text[:12], delay=20)


def agent_replies(page: Page, text: str) -> None:
    page.fill("#composer textarea", text)
    page.select_option("#composer select[name=channel]", Channel.WEBCHAT)
    page.click("#composer button[data-mode=reply]")
    expect(page.locator("#timeline .msg-outbound").last).to_contain_text(text)


def start_chat(page: Page, url: str, *, name: str, email: str = "") -> None:
    page.goto(url)
    page.get_by_test_id("launcher").click()
    expect(page.get_by_test_id("panel")).to_be_visible()
    page.get_by_test_id("prechat-name").fill(name)
    page.get_by_test_id("prechat-email").fill(email)
    page.get_by_test_id("prechat-submit").click()
    expect(page.get_by_test_id("input")).to_be_visible()


def visitor_writes(page: Page, text: str) -> None:
    page.get_by_test_id("input").fill(text)
    page.get_by_test_id("send").click()
    mine = page.get_by_test_id("message").filter(has_text=text)
    expect(mine).to_have_attribute("data-direction", "in")
    # Confirmed by the desk (ack): it carries the message's id.
    expect(mine).to_have_attribute("data-id", re.compile(r"^\d+$"))


def test_visitor_and_agent_chat_live_with_typing_and_history_survives_reload(browser: Browser, asgi_server: str, contexts,
                                                                              host_site: HostSite, celery_worker):
    channel = WebChatChannelFactory(inbox__name="Acme Kettles", allowed_origins=host_site.origin, reply_time_minutes=60)
    channel.inbox.members.add(UserFactory(username="alice", first_name="Alice", last_name="Agent"))
    url = host_page(host_site, asgi_server, channel)
    agent = agent_page(browser, contexts, asgi_server, "alice")
    visitor = new_context(browser, contexts).new_page()
    problems = console_problems(visitor)

    start_chat(visitor, url, name="Jane Visitor")
    expect(visitor.get_by_test_id("reply-time")).to_have_text("We typically reply within 1 hour")
    visitor_writes(visitor, "Hello, is the blue kettle in stock?")

    question = Message.objects.get(text="Hello, is the blue kettle in stock?")
    assert (question.channel, question.kind) == (Channel.WEBCHAT, Message.Kind.INBOUND)
    conversation_id = question.conversation_id
    # The agent's list shows the new conversation without a reload.
    item = agent.locator(f".conv-item[data-conversation-id='{conversation_id}']")
    expect(item).to_contain_text("blue kettle")
    agent.click(f"a[data-conversation='{conversation_id}']")
    expect(agent.locator("#timeline")).to_contain_text("Hello, is the blue kettle in stock?")
    # The agent has it open: the visitor's widget says "Seen" under the question.
    seen = visitor.get_by_test_id("message").filter(has_text="blue kettle").locator("xpath=following-sibling::*[1]")
    expect(seen).to_have_attribute("data-testid", "seen")
    expect(seen).to_have_text("Seen")

    typing = visitor.get_by_test_id("typing")
    expect(typing).to_be_hidden()
    agent_types(agent, "Yes, we have three left.")
    expect(typing).to_have_text("Alice is typing…")
    agent_replies(agent, "Yes, we have three left.")

    answer = visitor.get_by_test_id("message").filter(has_text="Yes, we have three left.")
    expect(answer).to_have_attribute("data-direction", "out")
    expect(typing).to_be_hidden()
    # The panel is open and visible: the widget reports the answer seen, which marks it read.
    wait_until(lambda: Message.objects.get(text="Yes, we have three left.").delivery_status == Message.DeliveryStatus.READ,
               timeout=5, what="the answer to be read", page=visitor)
    # And the other way: the agent sees the visitor typing.
    visitor.get_by_test_id("input").press_sequentially("Great, I'll", delay=20)
    expect(agent.locator("#typing")).to_have_text("Jane Visitor is typing…")
    visitor.get_by_test_id("input").press_sequentially(" take one.", delay=10)
    visitor.get_by_test_id("send").click()
    expect(agent.locator("#timeline")).to_contain_text("Great, I'll take one.")

    visitor.reload()
    # The panel stays open across page loads; the history comes back with the same visitor.
    messages = visitor.get_by_test_id("messages")
    expect(messages.get_by_test_id("message")).to_have_count(3)
    expect(messages.get_by_test_id("message").nth(0)).to_contain_text("Hello, is the blue kettle in stock?")
    expect(messages.get_by_test_id("message").nth(1)).to_contain_text("Yes, we have three left.")
    expect(messages.get_by_test_id("message").nth(2)).to_contain_text("Great, I'll take one.")
    expect(visitor.get_by_test_id("prechat")).to_be_hidden()
    assert Visitor.objects.filter(channel=channel).count() == 1
    assert problems == []


def test_reply_to_a_visitor_who_left_goes_by_email_and_the_emailed_answer_threads_back(
    browser: Browser, asgi_server: str, contexts, host_site: HostSite, celery_worker, fake_postmark: FakePostmark
):
    channel = WebChatChannelFactory(inbox__name="Acme Kettles", allowed_origins=host_site.origin, pre_chat_email_required=True)
    EmailChannelFactory(inbox=channel.inbox, address="support@acme.test", from_name="Acme Support")
    channel.inbox.members.add(UserFactory(username="alice", first_name="Alice", last_name="Agent"))
    url = host_page(host_site, asgi_server, channel)
    fake_postmark.received.clear()
    visitor_context = new_context(browser, contexts)
    visitor = visitor_context.new_page()

    visitor.goto(url)
    visitor.get_by_test_id("launcher").click()
    visitor.get_by_test_id("prechat-name").fill("Jane Visitor")
    visitor.get_by_test_id("prechat-submit").click()  # the email is required here: nothing happens
    expect(visitor.get_by_test_id("prechat")).to_be_visible()
    assert not Visitor.objects.exists()
    visitor.get_by_test_id("prechat-email").fill("jane.visitor@example.org")
    visitor.get_by_test_id("prechat-submit").click()
    visitor_writes(visitor, "Can you check my order 1234?")
    conversation_id = Message.objects.get(text="Can you check my order 1234?").conversation_id

    visitor_context.close()  # the visitor leaves
    wait_until(lambda: not Visitor.objects.filter(online_until__gt=timezone.now()).exists(), timeout=10, what="the visitor to go offline")

    agent = agent_page(browser, contexts, asgi_server, "alice")
    agent.click(f"a[data-conversation='{conversation_id}']")
    agent_replies(agent, "It ships tomorrow morning.")

    [sent] = fake_postmark.wait_for(1, timeout=15)
    assert "jane.visitor@example.org" in sent.json["To"]
    assert "It ships tomorrow morning." in sent.json["TextBody"]
    message_id = sent.header("Message-ID")
    assert message_id
    reply = Message.objects.get(text="It ships tomorrow morning.")
    assert f"<{reply.rfc_message_id}>" == message_id

    email = build_email(sender="Jane Visitor <jane.visitor@example.org>", to="support@acme.test",
                        subject=sent.json["Subject"], in_reply_to=message_id, references=message_id,
                        text="Thanks! I will pick it up on Monday.")
    request = urllib.request.Request(
        f"{asgi_server}/anymail/postmark/inbound/", data=json.dumps(postmark_inbound_json(email)).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": basic_auth_header()},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    # The worker threads it into the conversation; the agent's open timeline shows it live.
    expect(agent.locator("#timeline")).to_contain_text("Thanks! I will pick it up on Monday.", timeout=15000)
    answer = Message.objects.get(text__startswith="Thanks! I will pick it up on Monday.")
    assert (answer.conversation_id, answer.channel, answer.kind) == (conversation_id, Channel.EMAIL, Message.Kind.INBOUND)


def test_a_site_not_allowed_cannot_open_the_widget_socket(browser: Browser, asgi_server: str, contexts, host_site: HostSite):
    channel = WebChatChannelFactory(allowed_origins="https://www.acme-kettles.example")
    url = host_page(host_site, asgi_server, channel, path="/elsewhere.html")
    # A genuine visitor token, issued to the allowed site.
    request = urllib.request.Request(
        f"{asgi_server}/widget/api/{channel.public_key}/session", data=b"{}", method="POST",
        headers={"Content-Type": "application/json", "Origin": "https://www.acme-kettles.example"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        token = json.load(response)["token"]
    page = new_context(browser, contexts).new_page()
    page.goto(url)

    page.get_by_test_id("launcher").click()
    expect(page.get_by_test_id("error")).to_be_visible()
    expect(page.get_by_test_id("error")).to_contain_text("not available")
    expect(page.get_by_test_id("input")).to_be_hidden()
    ws_url = f"ws://{urlsplit(asgi_server).netloc}/ws/widget/?key={channel.public_key}"
    open_socket = """([url, token]) => new Promise((resolve) => {
        const ws = new WebSocket(url, ["desk-widget.v1", token]);
        ws.onopen = () => { resolve("open " + ws.protocol); ws.close(); };
        ws.onclose = () => resolve("refused");
    })"""
    assert page.evaluate(open_socket, [ws_url, token]) == "refused"
    assert not Visitor.objects.filter(online_until__gt=timezone.now()).exists()

    # The same page and token once the site is allowed: the refusal above was the origin's.
    WebChatChannel.objects.filter(pk=channel.pk).update(allowed_origins=f"https://www.acme-kettles.example\n{host_site.origin}")
    assert page.evaluate(open_socket, [ws_url, token]) == "open desk-widget.v1"


def test_without_a_socket_the_widget_chats_over_http_and_sends_files_within_the_limit(
    browser: Browser, asgi_server: str, contexts, host_site: HostSite, server_media
):
    """The site's CSP lets the widget reach the desk over HTTPS but not open a WebSocket."""
    channel = WebChatChannelFactory(allowed_origins=host_site.origin, pre_chat_form=False)
    agent = UserFactory(username="alice", first_name="Alice")
    url = host_page(host_site, asgi_server, channel, path="/no-sockets.html", websockets=False)
    visitor = new_context(browser, contexts).new_page()
    visitor.goto(url)
    visitor.get_by_test_id("launcher").click()

    expect(visitor.get_by_test_id("panel")).to_have_attribute("data-state", "http")
    visitor_writes(visitor, "Do you ship to Norway?")
    visitor.get_by_test_id("file-input").set_input_files(
        [{"name": "kettle.png", "mimeType": "image/png", "buffer": png_bytes()}]
    )
    image = visitor.get_by_test_id("message").locator("img[alt='kettle.png']")
    expect(image).to_have_attribute("src", re.compile(rf"^{re.escape(asgi_server)}/widget/api/{channel.public_key}/files/[0-9a-f]{{32}}\?sig="))
    wait_until(lambda: image.evaluate("img => img.complete && img.naturalWidth") == 1, timeout=5, what="the image", page=visitor)
    visitor.get_by_test_id("file-input").set_input_files(
        [{"name": "unboxing.mp4", "mimeType": "video/mp4", "buffer": b"\0" * (ATTACHMENT_MAX_BYTES + 1)}]
    )
    refused = visitor.get_by_test_id("message").filter(has_text="unboxing.mp4")
    expect(refused).to_have_attribute("data-status", "failed")
    expect(refused).to_contain_text(f"Not sent: The file is larger than the {ATTACHMENT_MAX_BYTES} byte limit.")

    question = Message.objects.get(text="Do you ship to Norway?")
    in_thread(reply_create, conversation=question.conversation, author=agent, text="Yes, within five days.")
    # No socket: the answer arrives with the next poll.
    answer = visitor.get_by_test_id("message").filter(has_text="Yes, within five days.")
    expect(answer).to_have_attribute("data-direction", "out")
    assert list(question.conversation.messages.filter(kind=Message.Kind.INBOUND).values_list("text", flat=True)) == [
        "Do you ship to Norway?", "",
    ]
    expect(visitor.get_by_test_id("message")).to_have_count(4)


def test_a_message_whose_ack_was_lost_is_sent_again_after_reconnecting_and_stored_once(
    browser: Browser, asgi_server: str, contexts, host_site: HostSite
):
    channel = WebChatChannelFactory(allowed_origins=host_site.origin, pre_chat_form=False)
    url = host_page(host_site, asgi_server, channel)
    visitor = new_context(browser, contexts).new_page()
    lost: list[dict] = []
    frames: list[dict] = []

    def relay(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        ws.on_message(lambda message: (frames.append(json.loads(message)), server.send(message)))

        def to_page(message: str) -> None:
            frame = json.loads(message)
            if frame["type"] == "ack" and not lost:
                lost.append(frame)  # the desk stored it; the connection drops before the ack arrives
                ws.close()
                server.close()
                return
            ws.send(message)

        server.on_message(to_page)

    visitor.route_web_socket(re.compile(r".*/ws/widget/.*"), relay)
    visitor.goto(url)
    visitor.get_by_test_id("launcher").click()
    expect(visitor.get_by_test_id("panel")).to_have_attribute("data-state", "live")

    visitor_writes(visitor, "Is the kettle dishwasher safe?")

    sent = [f for f in frames if f["type"] == "message"]
    assert len(sent) == 2 and sent[0]["client_id"] == sent[1]["client_id"] == lost[0]["client_id"]
    expect(visitor.get_by_test_id("message")).to_have_count(1)
    assert Message.objects.filter(text="Is the kettle dishwasher safe?").count() == 1

"""Full-text search: message text, contacts and subjects on both engines (PostgreSQL full
text, SQLite FTS5), highlighted safely, scoped to the agent's inboxes, never a 500."""
from __future__ import annotations

import re

import pytest
from django.db import connection

from conversations.models import Contact, Conversation, Message
from tests.clients import api_client_for, manager_client
from tests.factories import ContactFactory, EmailChannelFactory, InboxFactory, MessageFactory, TicketFactory, UserFactory
from tickets.search import SearchHit, fts5_query, has_phrase, highlight_parts, search_query_clean, ticket_search

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent():
    return UserFactory(username="alice", first_name="Alice")


@pytest.fixture
def inbox(agent):
    inbox = EmailChannelFactory(inbox__name="Support").inbox
    inbox.members.add(agent)
    return inbox


def conversation(inbox, *texts: str, subject: str = "Question", contact: Contact | None = None, **ticket) -> Conversation:
    contact = contact or ContactFactory(name="Someone Else", email="someone@example.net", phone="")
    made = TicketFactory(conversation__inbox=inbox, conversation__subject=subject, conversation__contact=contact, **ticket)
    for text in texts:
        MessageFactory(conversation=made.conversation, text=text, author_contact=contact)
    return made.conversation


def found(agent, q: str) -> dict[int, SearchHit]:
    return ticket_search(user=agent, q=q)


def marked(hit: SearchHit) -> list[str]:
    return [text for text, is_hit in hit.parts if is_hit]


def listed(client, query: str) -> str:
    response = client.get(f"/list?{query}")
    assert response.status_code == 200, response.content
    return re.sub(r"\s+", " ", response.content.decode())


# What it finds ---------------------------------------------------------------------------

def test_finds_words_of_messages_with_the_hits_marked(agent, inbox):
    fire = conversation(inbox, "Hello, my printer is on fire since this morning.", "Any news?")
    conversation(inbox, "My invoice is wrong.")

    hits = found(agent, "printer fire")

    assert list(hits) == [fire.pk]
    hit = hits[fire.pk]
    assert hit.field == "message"
    assert [w.lower() for w in marked(hit)] == ["printer", "fire"]
    assert "printer is on fire" in hit.text


def test_finds_contacts_by_name_email_and_phone_and_conversations_by_subject(agent, inbox):
    jane = ContactFactory(name="Jane Roe", email="jane.roe@example.org", phone="+15550001234")
    by_contact = conversation(inbox, "nothing relevant", contact=jane)
    by_subject = conversation(inbox, "nothing relevant", subject="Refund for order 1234")

    assert found(agent, "roe")[by_contact.pk].field == "contact"
    assert list(found(agent, "jane.roe@example.org")) == [by_contact.pk]
    assert list(found(agent, "jane")) == [by_contact.pk]  # the email's parts count too
    assert list(found(agent, "+15550001234")) == [by_contact.pk]
    hit = found(agent, "refund")[by_subject.pk]
    assert hit.field == "subject" and marked(hit) == ["Refund"] and hit.text == "Refund for order 1234"


def test_a_message_hit_is_shown_before_a_subject_or_contact_hit(agent, inbox):
    both = conversation(inbox, "The refund arrived, thanks", subject="Refund")

    assert found(agent, "refund")[both.pk].field == "message"


def test_websearch_syntax_phrases_or_and_exclusion(agent, inbox):
    red = conversation(inbox, "the red printer is broken")
    blue = conversation(inbox, "the blue printer works, the red light is on")
    scanner = conversation(inbox, "the scanner jammed")

    assert set(found(agent, '"red printer"')) == {red.pk}
    assert set(found(agent, "printer -blue")) == {red.pk}
    assert set(found(agent, "scanner OR blue")) == {blue.pk, scanner.pk}
    assert set(found(agent, "red printer")) == {red.pk, blue.pk}


def test_search_sees_every_status_and_snoozed_ones_but_not_system_lines(agent, inbox):
    solved = conversation(inbox, "printer fixed", status="solved")
    snoozed = conversation(inbox, "printer ordered", status="pending", snoozed_at="2025-01-01T00:00:00Z")
    system = conversation(inbox)
    MessageFactory(conversation=system, kind=Message.Kind.SYSTEM, text="Alice changed the printer status")

    assert set(found(agent, "printer")) == {solved.pk, snoozed.pk}


def test_only_the_agents_inboxes_and_managers_see_all(agent, inbox):
    mine = conversation(inbox, "printer on fire")
    theirs = conversation(InboxFactory(), "printer on fire too", contact=ContactFactory(name="Printer Person"))

    assert list(found(agent, "printer")) == [mine.pk]
    lonely = UserFactory()
    assert found(lonely, "printer") == {}  # no inbox at all
    boss = UserFactory(is_superuser=True)
    assert set(found(boss, "printer")) == {mine.pk, theirs.pk}


def test_merged_conversations_are_left_out(agent, inbox):
    target = conversation(inbox, subject="Printer")
    source = conversation(inbox, subject="Printer again")
    Conversation.objects.filter(pk=source.pk).update(merged_into=target)

    assert list(found(agent, "printer")) == [target.pk]


def test_newest_matches_first_and_at_most_the_limit(agent, inbox):
    made = [conversation(inbox, f"printer case {n}") for n in range(5)]

    hits = ticket_search(user=agent, q="printer", limit=3)

    assert list(hits) == [c.pk for c in made[::-1][:3]]


# Keeping the index in step (triggers on SQLite, expression indexes on PostgreSQL) --------

def test_edits_and_deletes_reach_the_index(agent, inbox):
    jane = ContactFactory(name="Jane Roe", email="jane@example.org")
    convo = conversation(inbox, subject="Printer", contact=jane)
    message = MessageFactory(conversation=convo, text="the toner is empty")

    message.text = "the drum is broken"
    message.save()
    assert found(agent, "toner") == {}
    assert list(found(agent, "drum")) == [convo.pk]
    message.delivery_status = "sent"
    message.save()  # other columns only: the index is untouched and still right
    assert list(found(agent, "drum")) == [convo.pk]

    Contact.objects.filter(pk=jane.pk).update(name="Janet Doe")
    assert found(agent, "roe") == {}
    assert list(found(agent, "janet")) == [convo.pk]
    Conversation.objects.filter(pk=convo.pk).update(subject="Scanner")
    assert found(agent, "printer") == {}
    assert list(found(agent, "scanner")) == [convo.pk]

    message.delete()
    assert found(agent, "drum") == {}


def test_the_engines_index_exists_after_every_migration():
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname IN ('msg_search_vector', 'conv_subject_fts', 'contact_fts')")
            assert sorted(row[0] for row in cursor.fetchall()) == ["contact_fts", "conv_subject_fts", "msg_search_vector"]
        else:
            # A later migration that remakes one of these tables drops its triggers: caught here.
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'conversations_%_fts_%'")
            triggers = sorted(row[0] for row in cursor.fetchall())
            assert triggers == sorted(f"conversations_{t}_fts_{op}" for t in ("message", "conversation", "contact")
                                      for op in ("ai", "ad", "au"))


# Odd input never fails ------------------------------------------------------------------

@pytest.mark.parametrize("q", ['"unbalanced (', "printer AND", "OR", "-", "- printer", "NOT printer", "printer*", "^printer",
                               "text:printer", "(printer)", 'printer" OR "', "!!!", "\x02printer\x03", "'; DROP TABLE x; --",
                               "a" * 200, "NEAR(printer fire)", "printer OR OR fire", "-printer"])
def test_odd_queries_answer_and_never_fail(agent_client, agent, inbox, q):
    conversation(inbox, "printer on fire")

    response = agent_client.get("/list", {"q": q})

    assert response.status_code == 200


def test_words_among_odd_syntax_are_still_found(agent, inbox):
    fire = conversation(inbox, "printer on fire")

    for q in ('printer "', "printer*", "(printer)", "\x00printer\x02", "printer -", "printer OR OR fire"):
        assert list(found(agent, q)) == [fire.pk], q
    assert found(agent, "-printer") == {}  # only an exclusion: nothing to search for
    assert found(agent, '"printer fire') == {}  # an unclosed quote still makes a phrase


def test_a_null_character_is_refused_with_the_reason(agent_client, inbox):
    response = agent_client.get("/list", {"q": "printer\x00"})

    assert response.status_code == 400 and b"Null characters are not allowed" in response.content


def test_fts5_query_quotes_every_term():
    assert fts5_query("printer fire") == '(("printer" AND "fire"))'
    assert fts5_query('"red printer" -blue OR scanner') == '(("red printer") NOT "blue") OR (("scanner"))'
    assert fts5_query('say "hi"" there') == '(("say" AND "hi" AND " there"))'
    assert fts5_query('NEAR(a b) col:x') == '(("NEAR(a" AND "b)" AND "col:x"))'
    assert fts5_query('x"y') == '(("x""y"))'
    assert fts5_query("-only") is None and fts5_query("!!! ...") is None and fts5_query("") is None
    assert fts5_query("a OR -b") is None and fts5_query("a OR") == '(("a"))'


def test_phrases_are_told_apart_from_words():
    assert has_phrase('"red printer"') and has_phrase("jane.roe@example.org") and has_phrase("foo-bar -x")
    assert not has_phrase("red printer -blue") and not has_phrase('"printer"') and not has_phrase("")


def test_query_cleaning_and_snippet_parts():
    assert search_query_clean("  a\x00b\x02c\n d ") == "a b c d"
    assert highlight_parts("on \x02fire\x03 <b>now</b>\n") == (("on ", False), ("fire", True), (" <b>now</b>", False))


# Rendered safely ------------------------------------------------------------------------

def test_the_list_shows_the_snippet_escaped_with_the_hits_marked(agent_client, agent, inbox):
    convo = conversation(inbox, 'the printer <script>alert(1)</script> & <mark>fake</mark> caught fire')

    page = listed(agent_client, "view=mine&q=printer")

    row = re.search(rf'data-conversation-id="{convo.pk}"(.*?)</li>', page).group(1)
    hit = re.search(r'<span class="hit hit-message" data-testid="search-hit">(.*?)</span>', row).group(1)
    assert "<mark>printer</mark>" in hit and "&amp;" in hit
    if connection.vendor == "sqlite":
        # FTS5 gives the text as written: every character escaped.
        assert "<mark>printer</mark> &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;mark&gt;fake&lt;/mark&gt;" in hit
    else:
        # ts_headline's parser takes <…> for markup and leaves it out of the snippet.
        assert "<mark>printer</mark> alert(1) &amp; fake caught fire" in hit
    assert "<script>" not in page and page.count("<mark>") == 1
    assert 'data-q="printer"' in page and "Matches for “printer” in every conversation you can see" in page


def test_the_list_marks_snoozed_hits_and_applies_the_filters(agent_client, agent, inbox):
    snoozed = conversation(inbox, "printer ordered", status="pending", snoozed_at="2025-01-01T00:00:00Z")
    solved = conversation(inbox, "printer fixed", status="solved")

    page = listed(agent_client, "view=open&q=printer")
    assert re.search(rf'data-conversation-id="{snoozed.pk}"[^>]*data-snoozed="1"', page)
    assert f'data-conversation-id="{solved.pk}"' in page

    page = listed(agent_client, "view=open&q=printer&status=solved")
    assert f'data-conversation-id="{snoozed.pk}"' not in page and f'data-conversation-id="{solved.pk}"' in page


def test_nothing_found_says_so(agent_client, inbox):
    conversation(inbox, "printer on fire")

    page = listed(agent_client, "q=scanner")

    assert "Nothing matches “scanner”." in page and 'class="conv-item' not in page


def test_stranger_finds_nothing_of_another_inbox(stranger_client, inbox):
    conversation(inbox, "printer on fire", subject="Printer")

    assert 'class="conv-item' not in listed(stranger_client, "q=printer")


# The API ---------------------------------------------------------------------------------

def test_api_search_returns_the_hits_with_their_snippet_parts(agent, inbox):
    fire = conversation(inbox, "My printer is on <b>fire</b>")
    conversation(inbox, "My invoice")

    body = api_client_for(agent).get("/api/v1/conversations/", {"q": "fire"}).json()

    [row] = body["results"]
    assert row["id"] == fire.pk
    assert row["search_hit"]["field"] == "message"
    assert {"text": "fire", "hit": True} in row["search_hit"]["snippet"]
    assert "printer is on" in "".join(part["text"] for part in row["search_hit"]["snippet"])


def test_api_without_q_has_no_search_hit_and_managers_search_everything(agent, inbox):
    mine = conversation(inbox, "printer")
    theirs = conversation(InboxFactory(), "printer")

    assert "search_hit" not in api_client_for(agent).get("/api/v1/conversations/").json()["results"][0]
    assert {row["id"] for row in manager_client().get("/api/v1/conversations/?q=printer").json()["results"]} == {mine.pk, theirs.pk}
    assert api_client_for(agent).get("/api/v1/conversations/", {"q": '"((('}).status_code == 200


def test_a_query_the_index_cannot_serve_finds_nothing_rather_than_reading_everything(agent, inbox):
    conversation(inbox, "printer on fire")
    conversation(inbox, "all good")

    # "printer OR -fire" matches every text without "fire": no index can find those.
    assert found(agent, "printer OR -fire") == {}
    assert found(agent, "-fire") == {}
    assert len(found(agent, "printer OR good")) == 2

"""Contacts over the REST API: search, detail, and who may see whom."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from conversations.models import ContactIdentity
from tests.clients import api_client_for, manager_client
from tests.factories import ContactFactory, InboxFactory, TicketFactory, UserFactory
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbox():
    return InboxFactory(name="Support", kind="email")


@pytest.fixture
def agent(inbox):
    user = UserFactory()
    inbox.members.add(user)
    return user


@pytest.fixture
def api(agent) -> APIClient:
    return api_client_for(agent)


def contact_in(inbox, **kwargs):
    contact = ContactFactory(**kwargs)
    TicketFactory(conversation__inbox=inbox, conversation__contact=contact)
    return contact


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


def test_anonymous_requests_are_refused():
    assert APIClient().get("/api/v1/contacts/").status_code in (401, 403)


def test_agents_see_contacts_of_their_inboxes_managers_see_all(api, inbox):
    mine = contact_in(inbox)
    contact_in(inbox, name="")  # second conversation of another contact: listed once each
    TicketFactory(conversation__inbox=inbox, conversation__contact=mine)
    elsewhere = contact_in(InboxFactory())
    no_conversation = ContactFactory()

    listed = ids(api.get("/api/v1/contacts/"))

    assert mine.pk in listed and len(listed) == 2
    assert elsewhere.pk not in listed and no_conversation.pk not in listed
    assert set(ids(manager_client().get("/api/v1/contacts/"))) >= {mine.pk, elsewhere.pk, no_conversation.pk}


def test_row_shape(api, inbox):
    contact = contact_in(inbox, name="Jane Roe", email="jane@example.org", phone="+15550001")

    row = api.get("/api/v1/contacts/").json()["results"][0]

    assert row == {"id": contact.pk, "name": "Jane Roe", "email": "jane@example.org", "phone": "+15550001",
                   "created_at": contact.created_at.isoformat().replace("+00:00", "Z"), "merged_into": None}


@pytest.mark.parametrize("q", ["jane", "ROE", "jroe@exam", "5550001"])
def test_search_by_name_email_or_phone(api, inbox, q):
    jane = contact_in(inbox, name="Jane Roe", email="jroe@example.org", phone="+15550001")
    contact_in(inbox, name="John Smith", email="john@example.net", phone="+4420000")

    assert ids(api.get("/api/v1/contacts/", {"q": q})) == [jane.pk]


def test_search_does_not_reach_beyond_the_agents_inboxes(api, inbox):
    contact_in(InboxFactory(), name="Jane Roe")

    assert ids(api.get("/api/v1/contacts/", {"q": "jane"})) == []


def test_search_rejects_an_overlong_query(api):
    response = api.get("/api/v1/contacts/", {"q": "x" * 201})

    assert response.status_code == 400
    assert list(response.json()) == ["q"]


def test_cursor_pagination_visits_every_contact_once(api, inbox):
    contacts = [contact_in(inbox) for _ in range(7)]

    seen, link = [], "/api/v1/contacts/?page_size=3"
    while link:
        body = api.get(link).json()
        seen += [row["id"] for row in body["results"]]
        link = body["next"]

    assert seen == sorted((c.pk for c in contacts), reverse=True)


@pytest.mark.parametrize("rows", [3, 30])
def test_list_query_count_does_not_grow_with_the_page(api, inbox, django_assert_num_queries, rows):
    for _ in range(rows):
        contact_in(inbox)

    # 1 session, 2 user, 3 manager check (groups),
    # 4 the page: contacts WHERE EXISTS (a conversation in one of the agent's inboxes).
    with django_assert_num_queries(4):
        response = api.get("/api/v1/contacts/?page_size=50")

    assert len(response.json()["results"]) == rows


def test_detail_with_identities_and_visible_conversations(api, agent, inbox):
    contact = ContactFactory(name="Jane Roe", email="jane@example.org")
    ContactIdentity.objects.create(contact=contact, kind="phone", address="+15550001")
    now = timezone.now()
    older = TicketFactory(conversation__inbox=inbox, conversation__contact=contact, conversation__subject="Old",
                          conversation__last_message_at=now - timedelta(days=2), status=Ticket.Status.SOLVED)
    newer = TicketFactory(conversation__inbox=inbox, conversation__contact=contact, conversation__subject="New",
                          conversation__last_message_at=now - timedelta(hours=1), conversation__last_message_preview="Hi")
    TicketFactory(conversation__inbox=InboxFactory(), conversation__contact=contact)  # not the agent's inbox

    body = api.get(f"/api/v1/contacts/{contact.pk}/").json()

    assert {k: body[k] for k in ("id", "name", "email", "phone")} == {
        "id": contact.pk, "name": "Jane Roe", "email": "jane@example.org", "phone": ""}
    assert body["identities"] == [
        {"kind": "email", "address": "jane@example.org", "sms_opted_out_at": None, "sms_consent_keyword": ""},
        {"kind": "phone", "address": "+15550001", "sms_opted_out_at": None, "sms_consent_keyword": ""},
    ]
    assert [c["id"] for c in body["conversations"]] == [newer.pk, older.pk]
    assert body["conversations"][0] == {
        "id": newer.pk,
        "subject": "New",
        "status": "new",
        "inbox": {"id": inbox.pk, "name": "Support", "kind": "email"},
        "last_message_at": newer.conversation.last_message_at.isoformat().replace("+00:00", "Z"),
        "last_message_preview": "Hi",
        "created_at": newer.conversation.created_at.isoformat().replace("+00:00", "Z"),
    }
    assert body["conversations"][1]["status"] == "solved"


def test_detail_outside_the_agents_inboxes_is_404(api):
    stranger = contact_in(InboxFactory())
    lonely = ContactFactory()

    assert api.get(f"/api/v1/contacts/{stranger.pk}/").status_code == 404
    assert api.get(f"/api/v1/contacts/{lonely.pk}/").status_code == 404
    assert api.get("/api/v1/contacts/999999/").status_code == 404
    assert manager_client().get(f"/api/v1/contacts/{lonely.pk}/").status_code == 200


def test_detail_query_count(api, inbox, django_assert_num_queries):
    contact = contact_in(inbox)
    for _ in range(5):
        TicketFactory(conversation__inbox=inbox, conversation__contact=contact)

    # 1 session, 2 user, 3 manager check, 4 the contact (EXISTS in the agent's inboxes),
    # 5 its identities, 6 the agent's inbox ids, 7 its tickets joined with conversation and inbox.
    with django_assert_num_queries(7):
        body = api.get(f"/api/v1/contacts/{contact.pk}/").json()

    assert len(body["conversations"]) == 6

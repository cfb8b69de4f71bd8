"""The OpenAPI schema is generated without warnings and documents every API v1 path."""
from __future__ import annotations

import json

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

PATHS = {
    "/api/v1/auth/token/": {"post"},
    "/api/v1/conversations/": {"get"},
    "/api/v1/conversations/{conversation_id}/": {"get"},
    "/api/v1/conversations/{conversation_id}/messages/": {"get"},
    "/api/v1/conversations/{conversation_id}/reply/": {"post"},
    "/api/v1/conversations/{conversation_id}/reply-channels/": {"get"},
    "/api/v1/conversations/{conversation_id}/merge/": {"post"},
    "/api/v1/conversations/{conversation_id}/notes/": {"post"},
    "/api/v1/conversations/{conversation_id}/status/": {"post"},
    "/api/v1/conversations/{conversation_id}/assign/": {"post"},
    "/api/v1/conversations/{conversation_id}/priority/": {"post"},
    "/api/v1/conversations/{conversation_id}/tags/": {"post"},
    "/api/v1/messages/{message_id}/retry/": {"post"},
    "/api/v1/contacts/": {"get"},
    "/api/v1/contacts/{contact_id}/": {"get"},
    "/api/v1/contacts/{contact_id}/merge/": {"post"},
    "/api/v1/events/": {"get"},
    "/api/v1/conversations/bulk/": {"post"},
    "/api/v1/conversations/{conversation_id}/snooze/": {"post"},
    "/api/v1/canned-responses/": {"get"},
    "/api/v1/reports/response-times/": {"get"},
    "/api/v1/reports/sla/": {"get"},
    "/api/v1/reports/volume/": {"get"},
    "/api/v1/reports/heatmap/": {"get"},
    "/api/v1/reports/backlog/": {"get"},
    "/api/v1/reports/agents/": {"get"},
    "/api/v1/reports/csat/": {"get"},
}


def test_schema_endpoint_lists_every_path(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert {path: set(ops) & {"get", "post"} for path, ops in schema["paths"].items()} == PATHS
    components = schema["components"]["schemas"]
    assert {"Conversation", "Message", "Timeline", "ContactDetail", "PaginatedConversationList"} <= set(components)
    assert set(components["Conversation"]["properties"]) >= {"inbox", "contact", "assignee", "tags", "waiting_since"}
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_schema_generation_has_no_warnings(tmp_path):
    # The same check as `manage.py spectacular --validate --fail-on-warn`: it raises on a
    # warning (e.g. two serializers resolving to one component name) or an invalid schema.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))

    assert "/api/v1/conversations/" in (tmp_path / "schema.yaml").read_text()


def test_docs_page_loads_nothing_from_a_cdn(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "https://" not in page and "http://" not in page  # the desk runs in a closed network

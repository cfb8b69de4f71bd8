"""The agent dashboard's socket: transport only. Events are ids; the page refetches.

Typing is ephemeral (no Event row): an agent's typing frame goes to the customer's widget
and to the other agents of the inbox; a visitor's typing arrives on the inbox group.
"""
from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.generic.websocket import JsonWebsocketConsumer
from django.http import Http404

from conversations.models import Inbox
from conversations.realtime import customer_group, inbox_group, user_group
from helpdesk.roles import is_manager
from tickets.selectors import inbox_ids_for_agent, ticket_get_for_agent


class AgentDashboardConsumer(JsonWebsocketConsumer):
    groups: list[str] = []

    def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            self.close(code=4403)  # before accept(): the client sees 403
            return
        self.user = user
        inbox_ids = inbox_ids_for_agent(user)
        if inbox_ids is None:
            inbox_ids = list(Inbox.objects.values_list("id", flat=True))
        self.joined = [inbox_group(i) for i in inbox_ids] + [user_group(user.pk)]
        for group in self.joined:
            async_to_sync(self.channel_layer.group_add)(group, self.channel_name)
        self.accept()
        self.send_json({"type": "hello", "manager": is_manager(user)})

    def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            async_to_sync(self.channel_layer.group_discard)(group, self.channel_name)

    def receive_json(self, content: dict, **kwargs: object) -> None:
        kind = content.get("type")
        if kind == "ping":
            self.send_json({"type": "pong"})
        elif kind == "typing":
            self._typing(content)

    def _typing(self, content: dict) -> None:
        conversation_id = content.get("conversation_id")
        if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
            self.send_json({"type": "error", "error": "conversation_id must be a number."})
            return
        try:
            # The same check as every dashboard view: 404 outside the agent's inboxes.
            ticket = ticket_get_for_agent(user=self.user, ticket_id=conversation_id)
        except Http404:
            self.send_json({"type": "error", "error": "No such conversation."})
            return
        typing = bool(content.get("typing"))
        name = self.user.first_name or self.user.get_username()
        send = async_to_sync(self.channel_layer.group_send)
        send(customer_group(ticket.pk), {"type": "widget.typing", "typing": typing, "name": name})
        send(inbox_group(ticket.conversation.inbox_id), {
            "type": "desk.typing", "conversation_id": ticket.pk, "typing": typing,
            "who": "agent", "user_id": self.user.pk, "name": name,
        })

    def desk_event(self, event: dict) -> None:
        self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "event"})

    def desk_typing(self, event: dict) -> None:
        # Our own typing comes back through the inbox group: not news to us.
        if event.get("who") == "agent" and event.get("user_id") == self.user.pk:
            return
        self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "typing"})

    def desk_notification(self, event: dict) -> None:
        self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "notification"})

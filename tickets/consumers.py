"""The agent dashboard's socket: transport only. Events are ids; the page refetches."""
from __future__ import annotations

from channels.generic.websocket import JsonWebsocketConsumer
from asgiref.sync import async_to_sync

from conversations.models import Inbox
from conversations.realtime import inbox_group
from helpdesk.roles import is_manager
from tickets.selectors import inbox_ids_for_agent


class AgentDashboardConsumer(JsonWebsocketConsumer):
    groups: list[str] = []

    def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            self.close(code=4403)  # before accept(): the client sees 403
            return
        inbox_ids = inbox_ids_for_agent(user)
        if inbox_ids is None:
            inbox_ids = list(Inbox.objects.values_list("id", flat=True))
        self.joined = [inbox_group(i) for i in inbox_ids]
        for group in self.joined:
            async_to_sync(self.channel_layer.group_add)(group, self.channel_name)
        self.accept()
        self.send_json({"type": "hello", "manager": is_manager(user)})

    def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            async_to_sync(self.channel_layer.group_discard)(group, self.channel_name)

    def receive_json(self, content: dict, **kwargs: object) -> None:
        if content.get("type") == "ping":
            self.send_json({"type": "pong"})

    def desk_event(self, event: dict) -> None:
        self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "event"})

"""The chat widget's socket: the visitor's side of web chat. Transport only; logic is in
channels_in.widget, shared with the HTTP fallback."""
from __future__ import annotations

from urllib.parse import parse_qs

from asgiref.sync import async_to_sync
from channels.consumer import SyncConsumer
from channels.db import database_sync_to_async
from channels.generic.websocket import JsonWebsocketConsumer

from channels_in import widget
from channels_in.models import Visitor
from conversations.realtime import customer_group


class WidgetConsumer(JsonWebsocketConsumer):
    """/ws/widget/?key=<public key>, subprotocols ["desk-widget.v1", <visitor token>].

    Mounted without AllowedHostsOriginValidator: the allowed origins are the inbox's own
    list, checked here before accept() (a close before accept is a 403 to the browser).
    """

    # Channels runs every sync consumer of a process on one shared thread, so each visitor's
    # message (a whole inbound write) queued every other visitor's frames behind it: seconds
    # of delay under load. A visitor's frames still run one at a time and in order (Channels
    # awaits each dispatch before taking the next), but different visitors' run in parallel.
    dispatch = database_sync_to_async(SyncConsumer.__dict__["dispatch"].func, thread_sensitive=False)

    def connect(self) -> None:
        self.visitor_id: int | None = None
        self.joined: str | None = None
        self.online_written = None
        try:
            visitor = self._authenticate()
        except widget.WidgetRefused:
            self.close()
            return
        self.visitor_id = visitor.pk
        self.accept(subprotocol=widget.SUBPROTOCOL)
        self.online_written = widget.visitor_heartbeat(visitor_id=visitor.pk)
        conversation = widget.visitor_conversation(visitor=visitor)
        self._join(conversation.pk if conversation else None)
        self.send_json({"type": "hello", "conversation_id": conversation.pk if conversation else None})

    def _authenticate(self) -> Visitor:
        key = (parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("key") or [""])[0]
        channel = widget.channel_get(public_key=key)
        origin = dict(self.scope.get("headers") or []).get(b"origin", b"").decode("latin-1")
        if not widget.origin_allowed(channel=channel, origin=origin):
            raise widget.WidgetRefused("Origin not allowed.")
        protocols = list(self.scope.get("subprotocols") or [])
        if len(protocols) != 2 or protocols[0] != widget.SUBPROTOCOL:
            raise widget.WidgetRefused("Expected the subprotocols desk-widget.v1 and a visitor token.")
        return widget.visitor_from_token(channel=channel, token=protocols[1])

    def _join(self, conversation_id: int | None) -> None:
        if conversation_id is None:
            return
        group = customer_group(conversation_id)
        if group == self.joined:
            return
        if self.joined is not None:
            async_to_sync(self.channel_layer.group_discard)(self.joined, self.channel_name)
        async_to_sync(self.channel_layer.group_add)(group, self.channel_name)
        self.joined = group

    def disconnect(self, code: int) -> None:
        if self.joined is not None:
            async_to_sync(self.channel_layer.group_discard)(self.joined, self.channel_name)
        if self.visitor_id is not None:
            widget.visitor_offline(visitor_id=self.visitor_id)

    def _visitor(self) -> Visitor:
        # Read afresh per frame: the conversation may have been created (or merged) meanwhile.
        return Visitor.objects.select_related("channel__inbox", "contact").get(pk=self.visitor_id)

    def receive_json(self, content: dict, **kwargs: object) -> None:
        if self.visitor_id is None or not isinstance(content, dict):
            return
        kind = content.get("type")
        try:
            if kind == "ping":
                self.online_written = widget.visitor_heartbeat(visitor_id=self.visitor_id, last_write=self.online_written)
                self.send_json({"type": "pong"})
            elif kind == "message":
                self._message(content)
            elif kind == "typing":
                widget.visitor_typing(visitor=self._visitor(), typing=bool(content.get("typing")))
            elif kind == "seen":
                widget.visitor_seen(visitor=self._visitor(), message_id=content.get("message_id"))
            else:
                self.send_json({"type": "error", "error": f"Unknown frame type {kind!r}."})
        except widget.WidgetRefused as refused:
            frame = {"type": "error", "error": refused.reason}
            if kind == "message":
                frame["client_id"] = content.get("client_id")
            self.send_json(frame)

    def _message(self, content: dict) -> None:
        message, _created = widget.visitor_message_send(
            visitor=self._visitor(), text=content.get("text"), client_id=content.get("client_id")
        )
        # The first message opens the conversation: from now on its pushes reach this socket.
        self._join(message.conversation_id)
        channel = self._visitor().channel
        self.send_json({"type": "ack", "client_id": content.get("client_id"), "message": widget.message_json(message, channel=channel)})

    # Channel-layer events for the visitor's conversation -------------------------------

    def widget_message(self, event: dict) -> None:
        self.send_json({"type": "message", "message": event["message"]})

    def widget_typing(self, event: dict) -> None:
        self.send_json({"type": "typing", "typing": bool(event.get("typing")), "name": event.get("name", "")})

    def widget_seen(self, event: dict) -> None:
        self.send_json({"type": "seen", "agent_last_seen_at": event.get("agent_last_seen_at")})

    def widget_status(self, event: dict) -> None:
        self.send_json({"type": "status", "message_id": event.get("message_id"), "status": event.get("status")})

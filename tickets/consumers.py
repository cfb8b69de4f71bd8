"""The agent dashboard's socket: transport only. Events are ids; the page refetches.

Typing and presence ("viewing") are ephemeral (no Event row): an agent's typing frame goes to
the customer's widget and to the other agents of the inbox; a visitor's typing arrives on the
inbox group; a viewing frame goes to the other agents of the inbox, and a socket that closes
takes back whatever it was viewing.

Access is enforced here as in every dashboard view and API endpoint (see helpdesk.roles):
frames are checked against the database like a request, and what the socket forwards is
re-checked while it lives, so a lost role, inbox membership or session stops the feed without
a reconnect.
"""
from __future__ import annotations

import json
from importlib import import_module
from time import monotonic

from asgiref.sync import async_to_sync
from channels.generic.websocket import JsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404

from conversations.models import Conversation, Inbox
from conversations.realtime import customer_group, inbox_group, user_group
from helpdesk.roles import is_manager, user_for_session
from tickets.selectors import inbox_ids_for_agent, ticket_get_for_agent

# How stale the socket's idea of "what this agent may see" may get. Forwarded events and
# pings re-read it (session, account, role, inbox memberships) once it is older than this.
#
# Why a re-check and not a push when memberships change: memberships change through many
# doors (the admin's member widget, a manager demoted, an account deactivated, a session
# ended by a logout or a password change elsewhere), none of them a service we could hook
# without signals, and a push over the channel layer is at-most-once, so a dropped "you lost
# inbox 3" would leave the socket streaming that inbox for the rest of its life. The
# database re-read cannot be lost, covers every door, also joins inboxes added meanwhile, and
# costs one handful of indexed queries per socket per interval, whatever the event rate.
ACCESS_RECHECK_SECONDS = 5.0
# channels-redis forgets a group member after its group_expiry (a day); re-joining refreshes it.
GROUP_REJOIN_SECONDS = 3600.0
# Incoming frames are a few dozen bytes (ping, typing, viewing): anything bigger is not ours.
MAX_FRAME_CHARS = 2048
# A page sends a ping every 25 s, typing every 2.5 s while typing, viewing every 20 s per open
# conversation: 10 frames a second sustained (30 in a burst) is far above any honest use.
FRAME_RATE_PER_SECOND = 10.0
FRAME_BURST = 30
# Conversations one socket may announce as viewed at once (tabs and side-by-side panes).
MAX_VIEWING = 20

CLOSE_RECONNECT = 4000  # asked to reconnect (realtime.user_sockets_reconnect)
CLOSE_SIGNED_OUT = 4401  # the session or account no longer authenticates
CLOSE_FORBIDDEN = 4403  # before accept(): the client sees an HTTP 403

NO_SUCH_CONVERSATION = "No such conversation."  # foreign and missing alike: nothing leaks


class AgentDashboardConsumer(JsonWebsocketConsumer):
    # Groups are joined and left by hand (_sync_groups): what they are changes while the socket lives.

    # --- lifecycle ------------------------------------------------------------------------

    def connect(self) -> None:
        self.closed = False
        self.joined: set[int] = set()
        self.joined_at = 0.0
        self.checked_at = 0.0
        self.visible: frozenset[int] | None = frozenset()  # None: every inbox
        self.viewing: dict[int, int] = {}  # conversation id -> the inbox group told
        self.tokens = float(FRAME_BURST)
        self.tokens_at = monotonic()
        self.throttled = False
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            self.close(code=CLOSE_FORBIDDEN)  # before accept(): the client sees 403
            return
        self.user = user
        async_to_sync(self.channel_layer.group_add)(user_group(user.pk), self.channel_name)
        if not self._access_current(force=True, accepted=False):
            self.close(code=CLOSE_FORBIDDEN)
            return
        self.accept()
        self.send_json({"type": "hello", "manager": is_manager(self.user)})

    def disconnect(self, code: int) -> None:
        self.closed = True
        for conversation_id, inbox_id in list(self.viewing.items()):
            self._send_presence(conversation_id, inbox_id, viewing=False)
        self.viewing.clear()
        if getattr(self, "user", None) is not None:
            self._group_discard(user_group(self.user.pk))
        for inbox_id in getattr(self, "joined", ()):
            self._group_discard(inbox_group(inbox_id))

    def _close(self, code: int) -> None:
        """Close from our side; group messages still queued for this socket are dropped."""
        if not self.closed:
            self.closed = True
            self.close(code=code)

    # --- access ----------------------------------------------------------------------------

    def _access_current(self, *, force: bool = False, accepted: bool = True) -> bool:
        """Whether the socket may go on, re-reading what it may see when stale (or forced).

        Closes the socket when its session or account no longer authenticates.
        """
        if self.closed:
            return False
        now = monotonic()
        if not force and now - self.checked_at < ACCESS_RECHECK_SECONDS:
            return True
        user = self._current_user()
        if user is None:
            if accepted:
                self._close(CLOSE_SIGNED_OUT)
            return False
        self.user = user
        inbox_ids = inbox_ids_for_agent(user)
        self.visible = None if inbox_ids is None else frozenset(inbox_ids)
        wanted = set(Inbox.objects.values_list("id", flat=True)) if inbox_ids is None else set(inbox_ids)
        self._sync_groups(wanted, rejoin=bool(self.joined_at) and now - self.joined_at > GROUP_REJOIN_SECONDS)
        for conversation_id, inbox_id in list(self.viewing.items()):
            if inbox_id not in wanted:  # we can no longer see it: take our presence back
                self._send_presence(conversation_id, self.viewing.pop(conversation_id), viewing=False)
        self.checked_at = now
        return True

    def _current_user(self) -> AbstractBaseUser | None:
        """The user as the database has them now: fresh role and inbox caches."""
        session = self.scope.get("session")
        key = getattr(session, "session_key", None) if session is not None else None
        if key:
            # A fresh read of the session row: the scope's copy was loaded at connect.
            return user_for_session(import_module(settings.SESSION_ENGINE).SessionStore(key))
        # Without a session (a scope built by hand): the account alone.
        return get_user_model()._default_manager.filter(pk=self.user.pk, is_active=True).first()

    def _sync_groups(self, wanted: set[int], *, rejoin: bool) -> None:
        for inbox_id in self.joined - wanted:
            self._group_discard(inbox_group(inbox_id))
        adding = wanted if rejoin else wanted - self.joined
        for inbox_id in adding:
            async_to_sync(self.channel_layer.group_add)(inbox_group(inbox_id), self.channel_name)
        if rejoin:
            async_to_sync(self.channel_layer.group_add)(user_group(self.user.pk), self.channel_name)
        if rejoin or not self.joined_at:
            self.joined_at = monotonic()
        self.joined = set(wanted)

    def _group_discard(self, group: str) -> None:
        async_to_sync(self.channel_layer.group_discard)(group, self.channel_name)

    def _may_see(self, inbox_id: int | None, conversation_id: int | None = None) -> bool:
        if not self._access_current():
            return False
        if self.visible is None:
            return True
        if inbox_id is None and conversation_id is not None:
            # A push that does not say its inbox (a visitor's typing): ask the database.
            inbox_id = Conversation.objects.filter(pk=conversation_id).values_list("inbox_id", flat=True).first()
        return inbox_id in self.visible

    # --- frames from the page ---------------------------------------------------------------

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: object) -> None:
        """Every frame is admitted, size-checked and parsed here: a bad one gets an error frame."""
        if self.closed or not self._admit():
            return
        if text_data is None:
            self._error("Frames are JSON text.")
            return
        if len(text_data) > MAX_FRAME_CHARS:
            self._error("Frame too large.")
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            self._error("Frames are JSON objects.")
            return
        if not isinstance(content, dict):
            self._error("Frames are JSON objects.")
            return
        self.receive_json(content)

    def _admit(self) -> bool:
        """A token bucket per socket: over the rate, frames are dropped with one error frame."""
        now = monotonic()
        self.tokens = min(float(FRAME_BURST), self.tokens + (now - self.tokens_at) * FRAME_RATE_PER_SECOND)
        self.tokens_at = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.throttled = False
            return True
        if not self.throttled:
            self.throttled = True
            self._error("Too many frames: slow down.")
        return False

    def receive_json(self, content: dict, **kwargs: object) -> None:
        kind = content.get("type")
        if kind == "ping":
            # The page pings every 25 s: also when no event comes to trigger the re-check.
            if self._access_current():
                self.send_json({"type": "pong"})
        elif kind == "typing":
            self._typing(content)
        elif kind == "viewing":
            self._viewing(content)
        else:
            self._error("Unknown frame type.")

    def _error(self, error: str) -> None:
        self.send_json({"type": "error", "error": error})

    def _conversation_id(self, content: dict) -> int | None:
        conversation_id = content.get("conversation_id")
        if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
            self._error("conversation_id must be a number.")
            return None
        return conversation_id

    def _ticket_inbox(self, conversation_id: int) -> int | None:
        """The conversation's inbox if the agent may work it now, checked as a request is."""
        if not self._access_current(force=True):
            return None
        try:
            # The same check as every dashboard view: 404 outside the agent's inboxes.
            ticket = ticket_get_for_agent(user=self.user, ticket_id=conversation_id)
        except Http404:
            self._error(NO_SUCH_CONVERSATION)
            return None
        return ticket.conversation.inbox_id

    def _typing(self, content: dict) -> None:
        conversation_id = self._conversation_id(content)
        if conversation_id is None:
            return
        inbox_id = self._ticket_inbox(conversation_id)
        if inbox_id is None:
            return
        typing = bool(content.get("typing"))
        name = self._name()
        send = async_to_sync(self.channel_layer.group_send)
        send(customer_group(conversation_id), {"type": "widget.typing", "typing": typing, "name": name})
        send(inbox_group(inbox_id), {
            "type": "desk.typing", "conversation_id": conversation_id, "typing": typing,
            "who": "agent", "user_id": self.user.pk, "name": name, "inbox_id": inbox_id,
        })

    def _viewing(self, content: dict) -> None:
        conversation_id = self._conversation_id(content)
        if conversation_id is None:
            return
        viewing = content.get("viewing")
        if not isinstance(viewing, bool):
            self._error("viewing must be true or false.")
            return
        if not viewing and conversation_id in self.viewing:
            # Taking back what this socket announced needs no new check (and must work
            # after the agent lost the inbox).
            self._send_presence(conversation_id, self.viewing.pop(conversation_id), viewing=False)
            return
        if viewing and conversation_id not in self.viewing and len(self.viewing) >= MAX_VIEWING:
            self._error(f"Viewing more than {MAX_VIEWING} conversations at once.")
            return
        inbox_id = self._ticket_inbox(conversation_id)
        if inbox_id is None:
            return
        if viewing:
            self.viewing[conversation_id] = inbox_id
        self._send_presence(conversation_id, inbox_id, viewing=viewing)

    def _send_presence(self, conversation_id: int, inbox_id: int, *, viewing: bool) -> None:
        async_to_sync(self.channel_layer.group_send)(inbox_group(inbox_id), {
            "type": "desk.presence", "conversation_id": conversation_id, "inbox_id": inbox_id,
            "user_id": self.user.pk, "name": self._name(), "viewing": viewing,
        })

    def _name(self) -> str:
        return self.user.first_name or self.user.get_username()

    # --- pushes from the channel layer --------------------------------------------------------

    async def dispatch(self, message: dict) -> None:
        """An event for an inbox the socket is known to see, with no re-check due, is sent from
        the event loop: no thread, no database. Every agent's socket gets every event of their
        inboxes, so this is the web process's most frequent work under load; the sync path
        (a thread and the connection bookkeeping around it) costs several times more. Anything
        else, or a re-check that is due, goes the sync way."""
        if message.get("type") == "desk.event" and not self.closed and monotonic() - self.checked_at < ACCESS_RECHECK_SECONDS:
            if self.visible is None or message.get("inbox_id") in self.visible:
                # A sync consumer's base_send is wrapped for threads; the loop awaits the send itself.
                await self.base_send.awaitable({"type": "websocket.send", "text": json.dumps(self._event_frame(message))})
            return
        await super().dispatch(message)

    def desk_event(self, event: dict) -> None:
        if self.closed or not self._may_see(event.get("inbox_id")):
            return
        self.send_json(self._event_frame(event))

    @staticmethod
    def _event_frame(event: dict) -> dict:
        return {k: v for k, v in event.items() if k != "type"} | {"type": "event"}

    def desk_typing(self, event: dict) -> None:
        # Our own typing comes back through the inbox group: not news to us.
        if self.closed or (event.get("who") == "agent" and event.get("user_id") == self.user.pk):
            return
        if not self._may_see(event.get("inbox_id"), event.get("conversation_id")):
            return
        self.send_json({k: v for k, v in event.items() if k not in ("type", "inbox_id")} | {"type": "typing"})

    def desk_presence(self, event: dict) -> None:
        # Never our own: the page knows what it views.
        if self.closed or event.get("user_id") == self.user.pk:
            return
        if not self._may_see(event.get("inbox_id"), event.get("conversation_id")):
            return
        self.send_json({
            "type": "presence", "conversation_id": event["conversation_id"], "user_id": event["user_id"],
            "name": event["name"], "viewing": event["viewing"],
        })

    def desk_notification(self, event: dict) -> None:
        if self.closed or not self._access_current():
            return
        self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "notification"})

    def desk_reconnect(self, event: dict) -> None:
        self._close(CLOSE_RECONNECT)

"""WebSocket routes. Each route carries its own checks: the two sockets trust different things."""
from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from channels_in.consumers import WidgetConsumer
from tickets.consumers import AgentDashboardConsumer

websocket_urlpatterns = [
    # The dashboard: the desk's own hosts only, then the session cookie.
    path("ws/agent/", AllowedHostsOriginValidator(AuthMiddlewareStack(AgentDashboardConsumer.as_asgi()))),
    # The widget runs on customers' sites: no cookies, and the consumer checks the Origin
    # against the inbox's allowed sites and the visitor token itself, before accept().
    path("ws/widget/", WidgetConsumer.as_asgi()),
]

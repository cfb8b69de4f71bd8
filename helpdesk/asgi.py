"""ASGI entry point: HTTP through Django, WebSockets under /ws/ through Channels."""
from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings.base")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter

import channels_in.widget_views  # noqa: F401  (connects the widget's CORS check before the first request)
from helpdesk.routing import websocket_urlpatterns

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origin checks and authentication are per route (helpdesk.routing).
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

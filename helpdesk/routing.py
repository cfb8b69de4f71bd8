from django.urls import path

from tickets.consumers import AgentDashboardConsumer

websocket_urlpatterns = [
    path("ws/agent/", AgentDashboardConsumer.as_asgi()),
]

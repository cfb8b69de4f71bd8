"""The web chat widget's HTTP API, under /widget/api/<public key>/ (see channels_in.widget_views)."""
from django.urls import path

from channels_in import widget_views

app_name = "widget"

urlpatterns = [
    path("preview/<str:public_key>/", widget_views.preview_view, name="preview"),
    path("api/<str:public_key>/config", widget_views.config_view, name="config"),
    path("api/<str:public_key>/session", widget_views.session_view, name="session"),
    path("api/<str:public_key>/messages", widget_views.messages_view, name="messages"),
    path("api/<str:public_key>/attachments", widget_views.attachments_view, name="attachments"),
    path("api/<str:public_key>/typing", widget_views.typing_view, name="typing"),
    path("api/<str:public_key>/seen", widget_views.seen_view, name="seen"),
    path("api/<str:public_key>/files/<str:file_uuid>", widget_views.file_view, name="file"),
]

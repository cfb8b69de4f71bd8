from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from helpdesk.health import healthz
from helpdesk.outbox import outbox

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", healthz, name="healthz"),
    path("outbox/", outbox, name="outbox"),
    path("anymail/", include("channels_in.urls")),
    path("twilio/", include("channels_in.sms_urls")),
    path("widget/", include("channels_in.widget_urls")),
    path("api/v1/reports/", include("tickets.report_api_urls")),
    path("api/v1/", include("tickets.workspace_api_urls")),
    path("api/", include("helpdesk.api_urls")),
    path("reports/", include("tickets.report_urls")),
    path("csat/", include("tickets.csat_urls")),
    path("", include("tickets.workspace_urls")),
    path("", include("tickets.urls")),
]

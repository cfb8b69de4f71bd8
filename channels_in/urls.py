"""Provider webhooks at anymail's own paths, with our stricter views in front."""
from __future__ import annotations

from django.urls import include, path, re_path

from channels_in.webhooks import email

urlpatterns = [
    re_path(r"^mailgun/inbound(_mime)?/$", email.MailgunInboundView.as_view(), name="mailgun_inbound"),
    path("mailgun/tracking/", email.MailgunTrackingView.as_view(), name="mailgun_tracking"),
    path("postmark/inbound/", email.PostmarkInboundView.as_view(), name="postmark_inbound"),
    path("postmark/tracking/", email.PostmarkTrackingView.as_view(), name="postmark_tracking"),
    path("amazon_ses/inbound/", email.AmazonSESInboundView.as_view(), name="amazon_ses_inbound"),
    path("amazon_ses/tracking/", email.AmazonSESTrackingView.as_view(), name="amazon_ses_tracking"),
    # Every other provider anymail supports, unchanged.
    path("", include("anymail.urls")),
]

from django.urls import path

from tickets import apis

urlpatterns = [
    path("events/", apis.EventListApi.as_view(), name="api-events"),
]

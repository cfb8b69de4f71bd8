from django.urls import path

from tickets.csat_views import csat_survey

urlpatterns = [
    path("<uuid:token>/", csat_survey, name="csat_survey"),
]

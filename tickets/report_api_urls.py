from django.urls import path

from tickets import report_apis

urlpatterns = [
    path("response-times/", report_apis.ResponseTimesApi.as_view(), name="api-report-response-times"),
    path("sla/", report_apis.SlaAttainmentApi.as_view(), name="api-report-sla"),
    path("volume/", report_apis.VolumeApi.as_view(), name="api-report-volume"),
    path("heatmap/", report_apis.HeatmapApi.as_view(), name="api-report-heatmap"),
    path("backlog/", report_apis.BacklogApi.as_view(), name="api-report-backlog"),
    path("agents/", report_apis.AgentActivityApi.as_view(), name="api-report-agents"),
    path("csat/", report_apis.CsatApi.as_view(), name="api-report-csat"),
]

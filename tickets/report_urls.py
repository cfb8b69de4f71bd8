from django.urls import path

from tickets import report_views

urlpatterns = [
    path("", report_views.reports_page, name="reports"),
    path("export.csv", report_views.reports_export_csv, name="reports-export"),
]

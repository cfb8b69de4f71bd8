"""Admin page to upload an iCalendar file into a business calendar's holidays.

Wired into BusinessCalendarAdmin by `holidays_import_urls(self)` in its get_urls; the change
form (templates/admin/tickets/businesscalendar/change_form.html) links to it. The page is an
admin view: staff only, and it asks for the change permission on business calendars.
"""
from __future__ import annotations

from datetime import date

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import URLPattern, path, reverse

from conversations.services import ApplicationError
from tickets.ical import MAX_ICAL_BYTES, holidays_import_ical
from tickets.models import BusinessCalendar

URL_NAME = "tickets_businesscalendar_import_holidays"


class HolidayImportForm(forms.Form):
    file = forms.FileField(label="iCalendar file (.ics)")
    start = forms.DateField(required=False, help_text="First day to import. Default: a year ago.")
    end = forms.DateField(required=False, help_text="Last day to import. Default: three years ahead.")

    def clean_file(self) -> bytes:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_ICAL_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_ICAL_BYTES // (1024 * 1024)} MB.")
        return upload.read()


def holidays_import_urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    """The URL to put before ModelAdmin.get_urls() (its catch-all would shadow it otherwise)."""

    def view(request: HttpRequest, object_id: str) -> HttpResponse:
        return holidays_import_view(request, model_admin=model_admin, object_id=object_id)

    return [path("<path:object_id>/import-holidays/", model_admin.admin_site.admin_view(view), name=URL_NAME)]


def holidays_import_view(request: HttpRequest, *, model_admin: admin.ModelAdmin, object_id: str) -> HttpResponse:
    calendar = model_admin.get_object(request, object_id)
    if calendar is None:
        raise Http404("No such business calendar.")
    if not model_admin.has_change_permission(request, calendar):
        raise PermissionDenied
    form = HolidayImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            result = holidays_import_ical(
                calendar=calendar, data=form.cleaned_data["file"], start=form.cleaned_data["start"], end=form.cleaned_data["end"]
            )
        except ApplicationError as err:
            form.add_error("file", str(err))
        else:
            messages.success(request, _summary(result.added, result.already_present, result.skipped_by_reason(), result.start, result.end))
            change_url = reverse(f"{model_admin.admin_site.name}:tickets_businesscalendar_change", args=[calendar.pk])
            return HttpResponseRedirect(change_url)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Import holidays into {calendar}",
        "opts": BusinessCalendar._meta,
        "original": calendar,
        "form": form,
        "max_mb": MAX_ICAL_BYTES // (1024 * 1024),
    }
    return render(request, "admin/tickets/businesscalendar/import_holidays.html", context)


def _summary(added: int, present: int, skipped: dict[str, int], start: date, end: date) -> str:
    text = f"Imported holidays from {start} to {end}: {added} added, {present} already present"
    if skipped:
        text += "; events skipped: " + ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))
    return text + "."

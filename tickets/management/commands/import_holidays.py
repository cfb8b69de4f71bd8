"""Import holidays from an iCalendar file into a business calendar.

    manage.py import_holidays "Support Berlin" feiertage.ics
    curl -s https://example.org/holidays.ics | manage.py import_holidays "Support Berlin" -

Exits non-zero with the reason on an unknown calendar or a file that cannot be imported
(nothing is written then); running it again with the same file adds nothing.
"""
from __future__ import annotations

import sys
from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.services import ApplicationError
from tickets.ical import MAX_ICAL_BYTES, HolidayImport, holidays_import_ical
from tickets.models import BusinessCalendar


class Command(BaseCommand):
    help = "Add the all-day events of an iCalendar (.ics) file as holidays of a business calendar."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("calendar", help="The business calendar's name.")
        parser.add_argument("path", help="The .ics file, or - for standard input.")
        parser.add_argument("--start", type=date.fromisoformat, help="First day to import (default: a year ago).")
        parser.add_argument("--end", type=date.fromisoformat, help="Last day to import (default: three years ahead).")

    def handle(self, *args: object, calendar: str, path: str, start: date | None, end: date | None, **options: object) -> None:
        try:
            target = BusinessCalendar.objects.get(name=calendar)
        except BusinessCalendar.DoesNotExist:
            known = ", ".join(BusinessCalendar.objects.order_by("name").values_list("name", flat=True)) or "none"
            raise CommandError(f"No business calendar named {calendar!r} (known: {known}).") from None
        data = self._read(path)
        try:
            result = holidays_import_ical(calendar=target, data=data, start=start, end=end)
        except ApplicationError as err:
            raise CommandError(str(err)) from err
        self._report(target, result, verbosity=int(options.get("verbosity", 1)))

    def _read(self, path: str) -> bytes:
        # One byte past the limit is enough for the service to refuse the file as too large.
        try:
            if path == "-":
                return sys.stdin.buffer.read(MAX_ICAL_BYTES + 1)
            with open(path, "rb") as handle:
                return handle.read(MAX_ICAL_BYTES + 1)
        except OSError as err:
            raise CommandError(f"Cannot read {path}: {err.strerror or err}") from err

    def _report(self, target: BusinessCalendar, result: HolidayImport, *, verbosity: int) -> None:
        self.stdout.write(
            f"{target.name}: added {result.added} holiday(s), {result.already_present} already present, "
            f"skipped {len(result.skipped)} event(s) ({result.start} to {result.end})"
        )
        if verbosity < 1:
            return
        for reason, count in sorted(result.skipped_by_reason().items()):
            self.stdout.write(f"  skipped {count}: {reason}")
        if verbosity >= 2:
            for item in result.skipped:
                self.stdout.write(f"    {item.start} {item.summary or '(no summary)'}: {item.reason}")

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from tickets.backfill import sla_backfill


class Command(BaseCommand):
    help = ("Rebuild SLA clocks and report facts from the timelines (after importing history or adding "
            "the first SLA policy). Replaces those tickets' clocks and facts; CSAT answers are kept.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ticket_ids", nargs="*", type=int, help="Only these tickets (default: all).")

    def handle(self, *args: object, **options: object) -> None:
        count = sla_backfill(ticket_ids=options["ticket_ids"] or None)
        self.stdout.write(self.style.SUCCESS(f"Replayed {count} tickets."))

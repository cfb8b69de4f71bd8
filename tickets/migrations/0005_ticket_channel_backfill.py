"""Tickets that existed before Ticket.channel: the channel of their first customer message."""
from django.db import migrations
from django.db.models import OuterRef, Subquery, Value
from django.db.models.functions import Coalesce


def fill_channel(apps, schema_editor):  # noqa: ANN001
    Ticket = apps.get_model("tickets", "Ticket")
    Message = apps.get_model("conversations", "Message")
    first = (Message.objects.filter(conversation_id=OuterRef("pk"), kind="inbound")
             .order_by("created_at", "id").values("channel")[:1])
    Ticket.objects.filter(channel="").update(channel=Coalesce(Subquery(first), Value("")))


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0004_ticket_sla_alert_index"),
        ("conversations", "0003_thread_rule_sender"),
    ]

    operations = [migrations.RunPython(fill_channel, migrations.RunPython.noop)]

"""The work: a ticket's state (status, priority, assignee, team, tags) per conversation."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from conversations.models import Conversation


class Team(models.Model):
    name = models.CharField(max_length=120, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.SlugField(max_length=60, unique=True)

    def __str__(self) -> str:
        return self.name


class Ticket(models.Model):
    """Shares its primary key with the conversation, so #123 names both."""

    class Status(models.TextChoices):
        NEW = "new", "New"
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        ON_HOLD = "on_hold", "On hold"
        SOLVED = "solved", "Solved"
        CLOSED = "closed", "Closed"

    class Priority(models.TextChoices):
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"
        URGENT = "urgent", "Urgent"

    OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING, Status.ON_HOLD)

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, primary_key=True, related_name="ticket")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.NORMAL)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_tickets")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    tags = models.ManyToManyField(Tag, blank=True, related_name="tickets")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    solved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "assignee"], name="ticket_status_assignee"),
        ]

    def __str__(self) -> str:
        return f"Ticket #{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class BusinessCalendar(models.Model):
    """When the team works: a time zone, weekly intervals and holidays.

    `intervals` is a list of {"weekday": 0-6 (Monday=0), "start": "HH:MM", "end": "HH:MM"}
    in the calendar's time zone; an end at or before its start runs past midnight into the
    next day. Several intervals per day are allowed (split shifts).
    """

    name = models.CharField(max_length=120, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", help_text="An IANA name, e.g. Europe/Berlin.")
    intervals = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return self.name


class Holiday(models.Model):
    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="holiday_unique_date")]
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"

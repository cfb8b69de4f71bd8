"""What the workspace's own template slots need beyond the view's context: the teams for the
transfer select (conversation header) and the agent's availability (top bar). One query each."""
from __future__ import annotations

from django import template
from django.contrib.auth.models import AbstractBaseUser

from tickets.models import AgentStatus, Team
from tickets.routing import agent_status_get

register = template.Library()


@register.simple_tag
def workspace_teams() -> list[Team]:
    return list(Team.objects.order_by("name", "pk"))


@register.simple_tag
def workspace_availability(user: AbstractBaseUser) -> dict[str, object]:
    status = agent_status_get(user=user)
    return {"value": status.availability, "capacity": status.capacity, "choices": AgentStatus.Availability.choices}

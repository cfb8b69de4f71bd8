"""The reports page in a real browser: the charts render with data, and the CSV export's totals
equal the figures on the page. The screenshot is kept as var/test-artifacts/reports.png."""
from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import Page, expect

from helpdesk.roles import MANAGERS_GROUP
from tests.browser.helpers import login
from tests.factories import InboxFactory, TeamFactory, TicketFactory, UserFactory
from tickets.models import ReportFact

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
K = ReportFact.Kind
START = datetime(2026, 6, 1, tzinfo=UTC)
QUERY = "start=2026-06-01&end=2026-06-30"


def seed_month(rng: random.Random) -> None:
    """A month of a small desk: ~80 conversations over two inboxes, three channels, three agents."""
    inboxes = [InboxFactory(name="Billing"), InboxFactory(name="Sales"), InboxFactory(name="Support")]
    agents = [UserFactory(username=name.lower(), first_name=name, last_name="Agent") for name in ("Alice", "Bob", "Chen")]
    teams = [TeamFactory(name="Tier 1"), TeamFactory(name="Tier 2")]
    facts: list[ReportFact] = []
    # Ten conversations still open from May: the backlog starts above zero.
    for _ in range(10):
        ticket = TicketFactory(conversation__inbox=inboxes[0])
        facts.append(ReportFact(kind=K.CREATED, at=START - timedelta(days=3), ticket=ticket, inbox=inboxes[0], channel="email"))
    for n in range(80):
        inbox = rng.choice(inboxes)
        channel = rng.choices(["email", "sms", "webchat"], [5, 2, 3])[0]
        agent, team = rng.choice(agents), rng.choice(teams)
        ticket = TicketFactory(conversation__inbox=inbox, assignee=agent, team=team)
        # Weekday office hours mostly, some evenings.
        day = START + timedelta(days=rng.randrange(28))
        created = day.replace(hour=rng.choice([8, 9, 9, 10, 10, 11, 13, 14, 14, 15, 16, 19, 22]), minute=rng.randrange(60))
        dims = {"ticket": ticket, "inbox": inbox, "channel": channel}
        facts.append(ReportFact(kind=K.CREATED, at=created, **dims))
        if rng.random() < 0.9:
            first = rng.randint(60, 4 * 3600)
            facts += [
                ReportFact(kind=K.REPLY, at=created + timedelta(seconds=first), agent=agent, **dims),
                ReportFact(kind=K.FIRST_RESPONSE, at=created + timedelta(seconds=first), agent=agent, calendar_seconds=first,
                           business_seconds=first * 2 // 3, **dims),
                ReportFact(kind=K.SLA, at=created + timedelta(seconds=first), metric="first_response",
                           breached=first > 3 * 3600, **dims),
            ]
            for k in range(rng.randint(0, 3)):
                wait = rng.randint(300, 6 * 3600)
                when = created + timedelta(hours=6 * (k + 1))
                facts += [ReportFact(kind=K.REPLY, at=when, agent=agent, **dims),
                          ReportFact(kind=K.NEXT_RESPONSE, at=when, agent=agent, calendar_seconds=wait, business_seconds=wait // 2, **dims)]
        if rng.random() < 0.75:
            solved = created + timedelta(hours=rng.randint(2, 60))
            facts += [ReportFact(kind=K.SOLVED, at=solved, agent=agent, team=team, **dims),
                      ReportFact(kind=K.RESOLUTION, at=solved, agent=agent, team=team,
                                 calendar_seconds=int((solved - created).total_seconds()),
                                 business_seconds=int((solved - created).total_seconds()) // 3, **dims),
                      ReportFact(kind=K.SLA, at=solved, metric="resolution", breached=rng.random() < 0.2, **dims)]
            if rng.random() < 0.6:
                facts.append(ReportFact(kind=K.CSAT, at=solved + timedelta(hours=1), agent=agent,
                                        rating=rng.choices([1, 2, 3, 4, 5], [1, 1, 2, 4, 7])[0], **dims))
            if rng.random() < 0.1:
                facts.append(ReportFact(kind=K.REOPENED, at=solved + timedelta(hours=2), agent=agent, **dims))
    ReportFact.objects.bulk_create(facts)


def figure(page: Page, name: str) -> str:
    element = page.locator(f'[data-figure="{name}"]').first
    return element.get_attribute("data-seconds") if element.get_attribute("data-seconds") is not None else element.inner_text().strip()


def test_reports_page_draws_its_charts_and_the_csv_matches(page: Page, asgi_server: str, transactional_db):
    seed_month(random.Random(5))
    manager = UserFactory(username="maria", first_name="Maria", last_name="Manager")
    manager.groups.add(Group.objects.get_or_create(name=MANAGERS_GROUP)[0])
    page.set_viewport_size({"width": 1360, "height": 900})
    login(page, "maria")
    page.goto(f"/reports/?{QUERY}")
    expect(page.locator("body[data-reports-ready='1']")).to_have_count(1)

    # Charts with data: bars with height, hot heatmap cells, a backlog line, gauges, CSAT bars.
    bars = page.locator("#chart-daily .day-bar")
    assert bars.count() == 30
    assert page.locator("#chart-daily rect.bar-created:not([height='0.0'])").count() > 10
    assert page.locator("#chart-heatmap rect.heat-cell").count() == 7 * 24
    assert page.locator("#chart-heatmap rect.heat-cell:not([data-count='0'])").count() > 10
    assert page.locator("#chart-backlog path.backlog-line").get_attribute("d").count("L") == 29
    assert page.locator("#chart-sla path.gauge-value").count() == 2  # first response and resolution have outcomes
    assert page.locator("#chart-csat .csat-bar:not([data-count='0'])").count() >= 3
    assert page.locator("#chart-response .resp-row[data-variant=calendar]:not([data-count='0'])").count() == 3
    assert page.locator("#chart-volume .vol-row").count() >= 3 + 3 + 2 + 3
    assert page.locator("#agent-activity tbody tr").count() == 3
    box = page.locator("#chart-backlog svg").bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 100  # laid out, not collapsed
    # The quick range buttons and the tooltip are our own script, loaded under the CSP.
    page.locator("#chart-heatmap rect.heat-cell:not([data-count='0'])").first.hover()
    expect(page.locator("#rp-tooltip")).to_be_visible()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "reports.png"), full_page=True)

    with page.expect_download() as info:
        page.click("#csv-export")
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert rows, "the export is empty"
    total = lambda column: sum(int(r[column] or 0) for r in rows)
    firsts = sorted(int(r["first_response_seconds"]) for r in rows if r["first_response_seconds"])
    ratings = [int(r["csat_rating"]) for r in rows if r["csat_rating"]]
    median = firsts[-(-len(firsts) // 2) - 1]  # nearest rank: the value at rank ceil(n / 2)

    assert int(figure(page, "created")) == total("created") == 80
    assert int(figure(page, "solved")) == total("solved") > 0
    assert int(figure(page, "first_response.calendar.count")) == len(firsts) > 0
    assert int(figure(page, "first_response.calendar.median")) == median
    assert int(figure(page, "first_response.median")) == median  # the headline figure too
    for metric in ("first_response", "resolution"):
        assert int(figure(page, f"sla.{metric}.achieved")) == total(f"sla_{metric}_achieved")
        assert int(figure(page, f"sla.{metric}.breached")) == total(f"sla_{metric}_breached")
    assert total("sla_resolution_achieved") + total("sla_resolution_breached") > 0
    assert int(figure(page, "csat.count")) == len(ratings) > 0
    assert float(figure(page, "csat.average")) == round(sum(ratings) / len(ratings), 2)

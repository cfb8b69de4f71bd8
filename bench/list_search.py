"""Benchmark of the agent's conversation list and full-text search over a big desk.

  python bench/list_search.py --conversations 100000     standalone: a throwaway SQLite file and a
                                                          throwaway PostgreSQL cluster (--db to choose)
  make bench                                              bench/run.py runs it on each engine it sets up

The desk is generated straight into the tables (COPY on PostgreSQL, executemany on SQLite,
through bench.desk's Writer): N conversations over four inboxes with ~--messages-per-conversation
messages each (100k and 1M by default), their contacts, tickets (statuses of a live desk,
assignees, teams, tags, snoozes, SLA deadlines) and one agent's read marks. Message text
draws from a vocabulary with a long tail (a few very common words, thousands of rare ones)
and the first message of each conversation names its order number, so searches range from a
word in a tenth of the desk to one message in a million. On PostgreSQL the search indexes are
dropped for the load and built afterwards (the figure is reported); on SQLite the FTS5
triggers index as rows arrive.

Then each list view and each search is requested --runs times through the dashboard's own
URLs (/list, /list?q=…, the API list) as two users: a manager (every inbox) and an agent
working two of the four inboxes; the tables show p50 and p95 in ms and the SQL queries per
request. It reports times; it never fails on them.

The Django half runs in a subprocess (`python -m bench.list_search inner ...`) with the desk's
environment, so this driver never sets Django up itself.
"""
from __future__ import annotations

import importlib
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import infra

# Words nobody searches for head the vocabulary, as in real text; then a desk's own words.
STOP = "the to and a i is my you it for of on in this that with have be not we are your can was".split()
COMMON = ("order please help thanks hello issue account problem support update email payment refund invoice "
          "shipping delivery tracking number password login error delayed broken package item return replace").split()
SURNAMES = ("smith jones taylor brown williams wilson johnson davies robinson wright thompson evans walker white roberts "
            "green hall wood jackson clarke patel khan lewis james phillips mason mitchell rose davis rodriguez cox "
            "alexander garden campbell johnston moore smyth oneill doherty stewart quinn murphy graham mclaughlin hamilton "
            "murray hughes").split()
FIRST_NAMES = "ada alan ann ben cid dee eve finn gia hal ida jon kai lea max nia oto pia rex sam tia uma vic wen".split()
NO_HIT = "xyzzyplugh"


def _pseudo_words(rng, count: int) -> list[str]:
    consonants, vowels = "bcdfghjklmnprstvz", "aeiou"
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 4))))
    return sorted(words)


# --- The Django half: generate, then time ---------------------------------------------------


def generate(*, conversations: int, per_conversation: int, seed: int) -> dict:
    """Write the desk in batches; returns row counts, what the searches look for, and times."""
    import random
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import transaction

    from bench.desk import Writer, _next_id, settle
    from conversations.models import Contact, Conversation, Inbox, Message
    from tickets.models import Tag, Team, Ticket, TicketRead

    started = time.monotonic()
    rng = random.Random(seed)
    User = get_user_model()
    inboxes = [Inbox.objects.create(name=f"List bench {n}", kind="email") for n in range(4)]
    teams = [Team.objects.create(name=f"List bench team {n}") for n in range(4)]
    tags = [Tag.objects.create(name=f"lb-{name}") for name in ("vip", "billing", "bug", "refund", "shipping", "urgent")]
    agents = [User.objects.create(username=f"list-agent-{n}", first_name=f"Agent {n}") for n in range(20)]
    member = agents[0]  # the agent measured: two of the four inboxes, one team
    manager = User.objects.create(username="list-manager", first_name="Manager", is_superuser=True)
    for n, agent in enumerate(agents):
        agent.inboxes.add(*([inboxes[0], inboxes[1]] if agent is member else [inboxes[n % 4], inboxes[(n + 1) % 4]]))
    teams[0].members.add(member)
    rare = _pseudo_words(rng, 5000)
    vocabulary = STOP + COMMON + rare
    # Zipf-like: the k-th word is about 1/k as frequent as the first.
    weights = [1 / (k + 1) for k in range(len(vocabulary))]
    pool = [" ".join(rng.choices(vocabulary, weights, k=rng.randint(8, 50))).capitalize() + "." for _ in range(20_000)]

    contact_id, conv_id, message_id = (_next_id(m) for m in (Contact, Conversation, Message))
    tag_link_id = (Ticket.tags.through.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    read_id = _next_id(TicketRead)
    end = datetime.now(UTC) - timedelta(minutes=1)
    span = 365 * 86400
    writer = Writer()
    statuses = [("new", 8), ("open", 12), ("pending", 5), ("on_hold", 2), ("solved", 48), ("closed", 25)]
    status_names, status_weights = [s for s, _ in statuses], [w for _, w in statuses]
    priorities = ["low", "normal", "normal", "normal", "high", "urgent"]
    sample = {}
    indexes = _postgres_indexes_drop()
    load_started = time.monotonic()
    with transaction.atomic():
        for n in range(conversations):
            created = end - timedelta(seconds=span * (conversations - n) / max(conversations, 1))
            inbox = inboxes[n % 4]
            first, last = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
            email = f"{first}.{last}.{contact_id}@customers.example.org"
            writer.add(Contact, {"id": contact_id, "name": f"{first.title()} {last.title()}", "email": email,
                                 "phone": f"+1555{contact_id:07d}", "created_at": created}, created)
            order = f"A{conv_id:07d}"
            count = max(1, round(rng.triangular(1, per_conversation * 2 - 1, per_conversation)))
            when = created
            waiting_since = None
            for k in range(count):
                kind = "inbound" if k % 2 == 0 else ("note" if rng.random() < 0.1 else "outbound")
                text = rng.choice(pool)
                if k == 0:
                    text = f"Reference {order}: {text}"
                values = {"id": message_id, "conversation_id": conv_id, "kind": kind, "channel": "email" if kind != "note" else "internal",
                          "text": text, "text_display": text, "created_at": when}
                if kind == "inbound":
                    values["author_contact_id"] = contact_id
                    waiting_since = waiting_since or when
                else:
                    values["author_user_id"] = rng.choice(agents).pk
                    if kind == "outbound":
                        values["delivery_status"] = "delivered"
                        waiting_since = None
                writer.add(Message, values, when)
                message_id += 1
                last_at = when
                when += timedelta(minutes=rng.randint(5, 600))
            status = rng.choices(status_names, status_weights)[0]
            is_open = status in ("new", "open", "pending", "on_hold")
            writer.add(Conversation, {"id": conv_id, "inbox_id": inbox.pk, "contact_id": contact_id, "subject": rng.choice(pool)[:80],
                                      "created_at": created, "last_message_at": last_at, "last_message_preview": text[:200],
                                      "last_message_channel": "email", "message_count": count,
                                      "waiting_since": waiting_since if is_open else None}, created)
            assignee = member if rng.random() < 0.01 else (rng.choice(agents) if status != "new" and rng.random() < 0.7 else None)
            snoozed = is_open and rng.random() < 0.02
            due = end + timedelta(hours=rng.uniform(-24, 72)) if is_open and rng.random() < 0.8 else None
            sla_state = "" if due is None else ("breached" if due < end else "warning" if due < end + timedelta(hours=1) else "ok")
            writer.add(Ticket, {"conversation_id": conv_id, "status": status, "priority": rng.choice(priorities),
                                "assignee_id": assignee.pk if assignee else None,
                                "team_id": rng.choice(teams).pk if rng.random() < 0.5 else None, "channel": "email",
                                "created_at": created, "updated_at": last_at, "solved_at": None if is_open else last_at,
                                "sla_due_at": due, "sla_state": sla_state, "snoozed_at": end if snoozed else None,
                                "snoozed_until": end + timedelta(days=1) if snoozed else None}, created)
            if rng.random() < 0.2:
                for tag in rng.sample(tags, rng.randint(1, 2)):
                    writer.add(Ticket.tags.through, {"id": tag_link_id, "ticket_id": conv_id, "tag_id": tag.pk}, created)
                    tag_link_id += 1
            if inbox in inboxes[:2] and rng.random() < 0.5:
                read_at = last_at if rng.random() < 0.7 else last_at - timedelta(minutes=1)  # read, or read before the latest
                writer.add(TicketRead, {"id": read_id, "user_id": member.pk, "ticket_id": conv_id, "read_at": read_at}, read_at)
                read_id += 1
            if n == conversations // 2:
                sample = {"order": order, "email": email, "surname": last}
            contact_id += 1
            conv_id += 1
        writer.finish([Contact, Conversation, Ticket, Message, Ticket.tags.through, TicketRead],
                      sequences=[Contact, Conversation, Message, TicketRead, Ticket.tags.through])
    load_seconds = time.monotonic() - load_started
    index_seconds = _postgres_indexes_create(indexes)
    settle()
    # Words picked by their rank in the vocabulary: one in about a tenth of the messages, one
    # in about one in five hundred, one in about one in fifteen hundred.
    return {
        "rows": writer.counts, "seconds": round(time.monotonic() - started, 1), "load_seconds": round(load_seconds, 1),
        "search_index_build_seconds": index_seconds,
        "ids": {"member": member.pk, "manager": manager.pk, "team": teams[0].pk, "inbox": inboxes[0].pk, "tag": tags[0].name},
        "words": {"common": COMMON[0], "medium": COMMON[12], "rare": rare[1500], "rarer": rare[4800]},
        "sample": sample,
    }


def _postgres_indexes_drop() -> list[tuple[str, str, str]]:
    """PostgreSQL: the search indexes go for the load (built once afterwards, as a restore does)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    migration = importlib.import_module("conversations.migrations.0004_search_index")
    with connection.cursor() as cursor:
        for name, _table, _expression in migration.POSTGRES_INDEXES:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
    return list(migration.POSTGRES_INDEXES)


def _postgres_indexes_create(indexes: list[tuple[str, str, str]]) -> float | None:
    from django.db import connection

    if not indexes:
        return None
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for name, table, expression in indexes:
            cursor.execute(f"CREATE INDEX {name} ON {table} USING gin ({expression})")
    return round(time.monotonic() - started, 1)


def _scenarios(filled: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    ids, words, sample = filled["ids"], filled["words"], filled["sample"]
    lists = [
        ("open", "/list?view=open"),
        ("mine", "/list?view=mine"),
        ("unassigned", "/list?view=unassigned"),
        ("team", f"/list?view=team:{ids['team']}"),
        ("inbox", f"/list?view=inbox:{ids['inbox']}"),
        ("snoozed", "/list?view=snoozed"),
        ("at_risk", "/list?view=at_risk"),
        ("open, longest waiting", "/list?view=open&sort=waiting"),
        ("all", "/list?view=all"),
        ("all, tag + priority", f"/list?view=all&tag={ids['tag']}&priority=high"),
        ("API open", "/api/v1/conversations/?view=open&page_size=50"),
    ]
    searches = [
        ("common word", words["common"]),
        ("medium word", words["medium"]),
        ("rare word", words["rare"]),
        ("rarer word", words["rarer"]),
        ("two words", f"{words['medium']} {words['rare']}"),
        ("phrase", f'"{words["common"]} {COMMON[1]}"'),
        ("exclusion", f"{words['medium']} -{words['common']}"),
        ("order number", sample.get("order", "A0000001")),
        ("contact email", sample.get("email", "nobody@example.org")),
        ("contact surname", sample.get("surname", "smith")),
        ("no hit", NO_HIT),
        ("odd syntax", '"unbalanced ( OR'),
    ]
    return lists, [(name, f"/list?view=open&q={q}") for name, q in searches]


def time_requests(*, filled: dict, runs: int) -> dict:
    import re
    from urllib.parse import quote, urlsplit

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = ["*"]  # the test client's host; nothing else is served here
    lists, searches = _scenarios(filled)
    users = {"agent (2 of 4 inboxes)": filled["ids"]["member"], "manager (all)": filled["ids"]["manager"]}
    results = []
    for who, user_id in users.items():
        client = Client()
        client.force_login(get_user_model().objects.get(pk=user_id))
        for kind, scenarios in (("list", lists), ("search", searches)):
            for name, url in scenarios:
                parts = urlsplit(url)
                url = parts.path + "?" + "&".join(
                    f"{k}={quote(v, safe=':')}" for k, _, v in (p.partition("=") for p in parts.query.split("&")))
                reset_queries()  # the log is capped: a full one would count nothing
                with CaptureQueriesContext(connection) as queries:
                    response = client.get(url)  # warm-up; also counts the queries
                query_count = len(queries)  # now: the capture reads the log lazily
                if response.status_code != 200:
                    raise RuntimeError(f"{url}: HTTP {response.status_code} {response.content[:300]!r}")
                body = response.content.decode()
                rows = (len(json.loads(body)["results"]) if url.startswith("/api/")
                        else len(re.findall(r'<li class="conv-item', body)))
                times = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    client.get(url)
                    times.append((time.perf_counter() - t0) * 1000)
                times.sort()
                results.append({"user": who, "kind": kind, "scenario": name, "url": url, "rows": rows, "queries": query_count,
                                "p50_ms": round(statistics.median(times), 1),
                                "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 1),
                                "max_ms": round(times[-1], 1), "runs": runs})
    return {"timings": results}


def inner(argv: list[str]) -> int:
    args = infra.inner_setup(argv, prog="bench.list_search inner", runs=20)
    from django.db import connection

    filled = generate(conversations=args.conversations, per_conversation=args.messages_per_conversation, seed=args.seed)
    timed = time_requests(filled=filled, runs=args.runs)
    print(json.dumps({"db": connection.vendor, "fill": filled, **timed}))
    return 0


# --- The driver ----------------------------------------------------------------------------


def note(text: str) -> None:
    print(f"[bench list {time.strftime('%H:%M:%S')}] {text}", flush=True)


def run_on(engine: str, database_url: str, **kwargs: object) -> dict:
    result = infra.engine_measure("bench.list_search", engine, database_url, timeout=7200, note=note, what=", then timing",
                                  **kwargs)
    fill = result["fill"]
    note(f"{engine}: generated in {fill['seconds']} s (load {fill['load_seconds']} s, search index "
         f"{fill['search_index_build_seconds'] if fill['search_index_build_seconds'] is not None else 'by triggers'}): {fill['rows']}")
    return result


def table(results: list[dict]) -> str:
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['db']}: failed: {r['error'].splitlines()[0][:120]}")
            continue
        rows = r["fill"]["rows"]
        built = r["fill"]["search_index_build_seconds"]
        lines.append(f"\n{r['db']}: {r['conversations']:,} conversations, {rows.get('conversations_message', 0):,} messages "
                     f"(generated in {r['fill']['seconds']} s{f', search indexes built in {built} s' if built is not None else ''})")
        users = list(dict.fromkeys(t["user"] for t in r["timings"]))
        header = ["", "scenario"] + [f"{u}: p50/p95 ms (q, rows)" for u in users]
        body = []
        for kind in ("list", "search"):
            for name in dict.fromkeys(t["scenario"] for t in r["timings"] if t["kind"] == kind):
                cells = [kind, name]
                for u in users:
                    t = next(t for t in r["timings"] if t["kind"] == kind and t["scenario"] == name and t["user"] == u)
                    cells.append(f"{t['p50_ms']:.1f} / {t['p95_ms']:.1f} ({t['queries']}, {t['rows']})")
                body.append(cells)
        lines += infra.grid(header, body)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return infra.engines_main(argv, prog="bench/list_search.py", doc=__doc__, name="list-search", runs=20,
                              runs_help="timed requests per scenario (default 20; p50 and p95 reported)", inner=inner,
                              run_on=run_on, table=table, note=note)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

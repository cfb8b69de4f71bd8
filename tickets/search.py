"""Full-text search over the agent's conversations: message text, contact name, email and
phone, and subject, with the matching words marked in a snippet.

Two engines behind one function, ticket_search():
- PostgreSQL full text: websearch_to_tsquery (quotes for phrases, OR, -word; it never fails
  on odd syntax) over GIN indexes of to_tsvector('simple', …) (messages: the stored column
  search_vector; contacts and subjects: expression indexes), ts_headline for the snippet;
- SQLite FTS5: external-content tables kept by triggers, the query rebuilt from the same
  syntax with every term quoted (so nothing the agent types is FTS5 syntax), snippet() and
  highlight() for the snippet.
Both are created by conversations/migrations/0004_search_index.py.

Results favour recent activity: the newest matching messages (at most MESSAGE_SCAN of them)
give at most `limit` conversations, besides at most `limit` conversations whose subject and
`limit` whose contact match. Search is a way to find a conversation, not a report: a word in
half the desk does not have to be counted.

Snippets come back as (text, is_hit) parts, never as markup: the engines mark hits with
control characters (any other control character is dropped from the parts), and the template
escapes every part and wraps the hits in <mark> itself.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection

from tickets.selectors import inbox_ids_for_agent

SEARCH_LIMIT = 50
MESSAGE_SCAN = 1000
MAX_QUERY_LENGTH = 200
HIT_START, HIT_END = "\x02", "\x03"
SNIPPET_TOKENS = 24
FIELD_ORDER = {"message": 0, "subject": 1, "contact": 2}  # which snippet a conversation shows
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MARKERS = re.compile(f"([{HIT_START}{HIT_END}])")


@dataclass(frozen=True)
class SearchHit:
    ticket_id: int
    field: str  # "message", "subject" or "contact": where the words were found
    parts: tuple[tuple[str, bool], ...]  # the snippet; True marks a hit

    @property
    def text(self) -> str:
        return "".join(text for text, _hit in self.parts)


def search_query_clean(q: str) -> str:
    """What the engines get: no control characters (the hit markers among them), one line."""
    return " ".join(_CONTROL.sub(" ", q).split())[:MAX_QUERY_LENGTH]


def ticket_search(*, user: AbstractBaseUser, q: str, limit: int = SEARCH_LIMIT) -> dict[int, SearchHit]:
    """Conversations the agent may see that match q, by ticket id, each with its best snippet
    (a message's words before the subject's before the contact's). One query."""
    q = search_query_clean(q)
    match = fts5_query(q)
    inbox_ids = inbox_ids_for_agent(user)
    if match is None or inbox_ids == []:
        return {}  # nothing to look for (no words, or only exclusions), or nowhere to look
    if connection.vendor == "postgresql":
        rows = _postgres(q, inbox_ids, limit)
    else:
        rows = _sqlite(match, inbox_ids, limit)
    hits: dict[int, SearchHit] = {}
    for field, ticket_id, snippet in rows:
        known = hits.get(ticket_id)
        if known is None or FIELD_ORDER[field] < FIELD_ORDER[known.field]:
            hits[ticket_id] = SearchHit(ticket_id=ticket_id, field=field, parts=highlight_parts(snippet or ""))
    return hits


def highlight_parts(snippet: str) -> tuple[tuple[str, bool], ...]:
    """Split an engine's snippet at its hit markers into (text, is_hit) parts, on one line."""
    parts: list[tuple[str, bool]] = []
    hit = False
    for piece in _MARKERS.split(re.sub(r"\s+", " ", snippet).strip()):
        if piece == HIT_START:
            hit = True
        elif piece == HIT_END:
            hit = False
        elif piece:
            parts.append((_CONTROL.sub("", piece), hit))
    return tuple(parts)


# --- SQLite FTS5 ----------------------------------------------------------------------------

_TERM = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w")
_WORDS = re.compile(r"\w+")


def fts5_query(q: str) -> str | None:
    """The agent's words as an FTS5 query with websearch's meaning: words all match, "a
    phrase" in quotes, OR between alternatives, -word excludes. Every term is quoted, so
    FTS5 operators, column filters or stray quotes in the input are only text. None when
    nothing searchable is left, or when an alternative only excludes (FTS5 cannot search for
    "not x" alone, and PostgreSQL's index cannot either)."""
    groups: list[tuple[list[str], list[str]]] = [([], [])]
    for negate, phrase, word in _TERM.findall(q):
        if word and word.upper() == "OR" and groups[-1][0]:
            groups.append(([], []))
            continue
        if word:
            negate, phrase = ("-", word[1:]) if word.startswith("-") and len(word) > 1 else ("", word)
        if not _WORD.search(phrase):
            continue  # only punctuation: FTS5 would find no token in it
        term = '"' + phrase.replace('"', '""') + '"'
        groups[-1][1 if negate else 0].append(term)
    if any(negative and not positive for positive, negative in groups):
        return None  # "a OR -b" matches nearly everything: no index serves it, on either engine
    alternatives = ["(" + " AND ".join(positive) + ")" + "".join(f" NOT {term}" for term in negative)
                    for positive, negative in groups if positive]
    return " OR ".join(f"({a})" for a in alternatives) if alternatives else None


def _scope(inbox_ids: list[int] | None) -> tuple[str, list[int]]:
    if inbox_ids is None:
        return "", []
    return f" AND c.inbox_id IN ({', '.join(['%s'] * len(inbox_ids))})", list(inbox_ids)


def _sqlite(match: str, inbox_ids: list[int] | None, limit: int) -> list[tuple[str, int, str]]:
    scope, scope_params = _scope(inbox_ids)
    # The FTS tables iterate their matches newest rowid first, so the scan stops early; the
    # snippets are made only for the rows kept (the outer selects).
    sql = f"""
        WITH msg AS (
            SELECT conversations_message_fts.rowid AS id, m.conversation_id
            FROM conversations_message_fts
            JOIN conversations_message m ON m.id = conversations_message_fts.rowid
            JOIN conversations_conversation c ON c.id = m.conversation_id
            WHERE conversations_message_fts MATCH %s AND m.kind <> 'system'{scope}
            ORDER BY conversations_message_fts.rowid DESC LIMIT %s
        ), best AS (
            SELECT conversation_id, max(id) AS message_id FROM msg GROUP BY conversation_id ORDER BY message_id DESC LIMIT %s
        ), subj AS (
            SELECT c.id AS conversation_id
            FROM conversations_conversation_fts JOIN conversations_conversation c ON c.id = conversations_conversation_fts.rowid
            WHERE conversations_conversation_fts MATCH %s AND c.merged_into_id IS NULL{scope}
            ORDER BY conversations_conversation_fts.rowid DESC LIMIT %s
        ), who AS (
            SELECT c.id AS conversation_id, conversations_contact_fts.rowid AS contact_id
            FROM conversations_contact_fts JOIN conversations_conversation c ON c.contact_id = conversations_contact_fts.rowid
            WHERE conversations_contact_fts MATCH %s AND c.merged_into_id IS NULL{scope}
            ORDER BY c.id DESC LIMIT %s
        )
        SELECT 'message', best.conversation_id,
               snippet(conversations_message_fts, 0, %s, %s, '…', {SNIPPET_TOKENS})
        FROM conversations_message_fts JOIN best ON best.message_id = conversations_message_fts.rowid
        WHERE conversations_message_fts MATCH %s
        UNION ALL
        SELECT 'subject', subj.conversation_id, highlight(conversations_conversation_fts, 0, %s, %s)
        FROM conversations_conversation_fts JOIN subj ON subj.conversation_id = conversations_conversation_fts.rowid
        WHERE conversations_conversation_fts MATCH %s
        UNION ALL
        SELECT 'contact', who.conversation_id,
               highlight(conversations_contact_fts, 0, %s, %s) || ' ' || highlight(conversations_contact_fts, 1, %s, %s)
               || ' ' || highlight(conversations_contact_fts, 2, %s, %s)
        FROM conversations_contact_fts JOIN who ON who.contact_id = conversations_contact_fts.rowid
        WHERE conversations_contact_fts MATCH %s
    """
    marks = [HIT_START, HIT_END]
    params = [match, *scope_params, MESSAGE_SCAN, limit, match, *scope_params, limit, match, *scope_params, limit,
              *marks, match, *marks, match, *marks, *marks, *marks, match]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- PostgreSQL full text -------------------------------------------------------------------

# The indexed column and expressions of the migration, repeated exactly so the planner uses them.
_TSQUERY = "websearch_to_tsquery('simple'::regconfig, %s)"
# A query the index cannot serve ("a OR -b" matches nearly everything) would read every row:
# querytree() is 'T' for those, and the arm then returns nothing without reading a row.
_INDEXABLE = f"querytree({_TSQUERY}) <> 'T'"
_CONTACT_DOCUMENT = (
    "k.name || ' ' || k.email || ' ' || translate(k.email, '@.', '  ') || ' ' || k.phone || ' ' "
    "|| regexp_replace(k.phone, '[^0-9]', '', 'g')"
)
_HEADLINE = f"StartSel={HIT_START}, StopSel={HIT_END}, MaxFragments=1, MaxWords={SNIPPET_TOKENS}, MinWords=8"
_HEADLINE_ALL = f"StartSel={HIT_START}, StopSel={HIT_END}, HighlightAll=true"


def has_phrase(q: str) -> bool:
    """Whether a term of q is several words ("a phrase", jane.roe@example.org, foo-bar)."""
    return any(len(_WORDS.findall(phrase or word)) > 1 for _negate, phrase, word in _TERM.findall(q))


def _postgres(q: str, inbox_ids: list[int] | None, limit: int) -> list[tuple[str, int, str]]:
    scope, scope_params = _scope(inbox_ids)
    # Newest matches first: PostgreSQL either walks the messages newest first testing each
    # stored vector, or collects the index's matches and sorts them. It guesses which from
    # how common the words are, and for a phrase it guesses far too many matches (its words
    # are common, their sequence is rare): the walk then reads the whole table (0.6-2 s at a
    # million messages, against ~0.1 s through the index). A phrase therefore orders by an
    # expression the primary key cannot serve, which leaves the index as the only way.
    newest_first = "m.id + 0" if has_phrase(q) else "m.id"
    # The query text is repeated (not taken from a CTE) so the planner sees a constant
    # tsquery in each arm and can weigh the index against the newest-first scan.
    sql = f"""
        WITH msg AS (
            SELECT m.id, m.conversation_id FROM conversations_message m
            JOIN conversations_conversation c ON c.id = m.conversation_id
            WHERE m.search_vector @@ {_TSQUERY} AND {_INDEXABLE} AND m.kind <> 'system'{scope}
            ORDER BY {newest_first} DESC LIMIT %s
        ), best AS (
            SELECT conversation_id, max(id) AS message_id FROM msg GROUP BY conversation_id ORDER BY message_id DESC LIMIT %s
        ), subj AS (
            SELECT c.id AS conversation_id FROM conversations_conversation c
            WHERE to_tsvector('simple'::regconfig, c.subject) @@ {_TSQUERY} AND {_INDEXABLE} AND c.merged_into_id IS NULL{scope}
            ORDER BY c.id DESC LIMIT %s
        ), who AS (
            SELECT c.id AS conversation_id, k.id AS contact_id FROM conversations_contact k
            JOIN conversations_conversation c ON c.contact_id = k.id
            WHERE to_tsvector('simple'::regconfig, {_CONTACT_DOCUMENT}) @@ {_TSQUERY} AND {_INDEXABLE}
              AND c.merged_into_id IS NULL{scope}
            ORDER BY c.id DESC LIMIT %s
        )
        SELECT 'message', best.conversation_id, ts_headline('simple'::regconfig, m.text, {_TSQUERY}, %s)
        FROM best JOIN conversations_message m ON m.id = best.message_id
        UNION ALL
        SELECT 'subject', subj.conversation_id, ts_headline('simple'::regconfig, c.subject, {_TSQUERY}, %s)
        FROM subj JOIN conversations_conversation c ON c.id = subj.conversation_id
        UNION ALL
        SELECT 'contact', who.conversation_id,
               ts_headline('simple'::regconfig, k.name || ' ' || k.email || ' ' || k.phone, {_TSQUERY}, %s)
        FROM who JOIN conversations_contact k ON k.id = who.contact_id
    """
    params = [q, q, *scope_params, MESSAGE_SCAN, limit, q, q, *scope_params, limit, q, q, *scope_params, limit,
              q, _HEADLINE, q, _HEADLINE_ALL, q, _HEADLINE_ALL]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()

"""Full-text search over message text, contacts (name, email, phone) and subjects.

PostgreSQL: to_tsvector('simple', ...) (no stemming, so a search finds the words as written,
in any language) indexed with GIN. Messages get a stored generated column, search_vector, and
the index is on it: with an expression index PostgreSQL parses a message's text again for
every row it filters or rechecks, and at a million messages a search that walks the newest
messages took seconds (5.7 s for "refund -order") where the stored vector takes 0.4 s and a
usual search 10-25 ms. Adding the column rewrites the message table once (ACCESS EXCLUSIVE
while it runs: about a minute per million messages). Contacts and subjects are short: plain
expression indexes, which the queries repeat exactly so the planner can use them. Indexes are
built CONCURRENTLY, so the tables stay writable meanwhile (hence a non-atomic migration).

SQLite: FTS5 tables with external content (they store only the index; the text stays in the
tables) kept in step by triggers, filled once here. The triggers fire only when an indexed
column really changes: Django's save() writes every column, and conversations are saved on
every message.

Caution for later migrations on SQLite: when Django remakes one of these three tables (an
AlterField that changes a column's type or size), the table is dropped and recreated and its
triggers go with it. Such a migration must run SQLITE_TRIGGERS again (and 'rebuild');
tests/tickets/test_search.py checks the triggers exist after all migrations.
"""
from django.db import migrations, transaction

# PostgreSQL: (index name, table, indexed expression). The contact expression also indexes
# the email split at "@" and "." so "jane" finds jane@example.org (the parser keeps an email
# as one token), and the phone's digits alone.
CONTACT_DOCUMENT = (
    "name || ' ' || email || ' ' || translate(email, '@.', '  ') || ' ' || phone || ' ' "
    "|| regexp_replace(phone, '[^0-9]', '', 'g')"
)
POSTGRES_MESSAGE_VECTOR = (
    "ALTER TABLE conversations_message ADD COLUMN IF NOT EXISTS search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, text)) STORED"
)
POSTGRES_INDEXES = (
    ("msg_search_vector", "conversations_message", "search_vector"),
    ("conv_subject_fts", "conversations_conversation", "(to_tsvector('simple'::regconfig, subject))"),
    ("contact_fts", "conversations_contact", f"(to_tsvector('simple'::regconfig, {CONTACT_DOCUMENT}))"),
)

# SQLite: (FTS table, content table, indexed columns).
SQLITE_TABLES = (
    ("conversations_message_fts", "conversations_message", ("text",)),
    ("conversations_conversation_fts", "conversations_conversation", ("subject",)),
    ("conversations_contact_fts", "conversations_contact", ("name", "email", "phone")),
)
SQLITE_TOKENIZER = "unicode61 remove_diacritics 2"


def sqlite_statements(fts: str, content: str, columns: tuple[str, ...]) -> list[str]:
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in columns)
    return [
        (f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='{content}', content_rowid='id', "
         f"tokenize='{SQLITE_TOKENIZER}')"),
        (f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {content} BEGIN "
         f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new}); END"),
        # External content: the index is told what it held, so it can remove those terms.
        (f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {content} BEGIN "
         f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old}); END"),
        (f"CREATE TRIGGER {fts}_au AFTER UPDATE OF {cols} ON {content} WHEN {changed} BEGIN "
         f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old}); "
         f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new}); END"),
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
    ]


SQLITE_TRIGGERS = [f"{fts}_{suffix}" for fts, _content, _cols in SQLITE_TABLES for suffix in ("ai", "ad", "au")]


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_MESSAGE_VECTOR)
        for name, table, expression in POSTGRES_INDEXES:
            schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} USING gin ({expression})")
    elif connection.vendor == "sqlite":
        with transaction.atomic(using=connection.alias):
            for fts, content, columns in SQLITE_TABLES:
                for statement in sqlite_statements(fts, content, columns):
                    schema_editor.execute(statement)


def backwards(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        for name, _table, _expression in POSTGRES_INDEXES:
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        schema_editor.execute("ALTER TABLE conversations_message DROP COLUMN IF EXISTS search_vector")
    elif connection.vendor == "sqlite":
        for trigger in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        for fts, _content, _columns in SQLITE_TABLES:
            schema_editor.execute(f"DROP TABLE IF EXISTS {fts}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("conversations", "0003_thread_rule_sender"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]

"""The PostgreSQL schema: versioned migrations, applied under an advisory lock so that several frontends
starting at once on one database migrate it exactly once."""

from __future__ import annotations

import psycopg

# pg_advisory_xact_lock key for migrations ("mailsandbox" folded into a bigint).
MIGRATION_LOCK = 0x6D61696C73616E64

MIGRATIONS: list[str] = [
    # 1: the same model as SQLite's (sandbox/store/_schema.py): messages with relay copies as children,
    # raw bytes apart (zstd-packed), a full-text vector per original, folders and entries with UIDs, the
    # relay queue and its trace, authentication results, tag names and the tallies the listing reads.
    """
    CREATE TABLE messages (
        rowid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT UNIQUE NOT NULL,
        parent BIGINT REFERENCES messages(rowid) ON DELETE CASCADE,
        created DOUBLE PRECISION NOT NULL,
        message_id TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        from_name TEXT NOT NULL DEFAULT '',
        from_addr TEXT NOT NULL DEFAULT '',
        to_json TEXT NOT NULL DEFAULT '[]',
        cc_json TEXT NOT NULL DEFAULT '[]',
        bcc_json TEXT NOT NULL DEFAULT '[]',
        reply_to_json TEXT NOT NULL DEFAULT '[]',
        date DOUBLE PRECISION,
        size BIGINT NOT NULL DEFAULT 0,
        attachments INTEGER NOT NULL DEFAULT 0,
        inline INTEGER NOT NULL DEFAULT 0,
        snippet TEXT NOT NULL DEFAULT '',
        read BOOLEAN NOT NULL DEFAULT FALSE,
        envelope_json TEXT NOT NULL DEFAULT '{}',
        username TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '',
        -- subject, from and to as the substring filters read them (their trigram index is below)
        headers TEXT NOT NULL DEFAULT '',
        -- subject (A), sender (B), recipients (C), body (D): body: searches the D positions alone
        fts TSVECTOR
    );
    CREATE INDEX messages_listing ON messages (created DESC, rowid DESC) WHERE parent IS NULL;
    CREATE INDEX messages_parent ON messages (parent) WHERE parent IS NOT NULL;
    CREATE INDEX messages_unread ON messages (rowid) WHERE parent IS NULL AND NOT read;
    CREATE INDEX messages_tagged ON messages (tags) WHERE tags != '';
    CREATE INDEX messages_message_id ON messages (message_id) WHERE parent IS NULL AND message_id != '';
    CREATE INDEX messages_fts ON messages USING gin (fts);
    CREATE TABLE message_raw (
        rowid BIGINT PRIMARY KEY REFERENCES messages(rowid) ON DELETE CASCADE,
        raw BYTEA NOT NULL
    );
    CREATE TABLE relayed (
        rowid BIGINT PRIMARY KEY REFERENCES messages(rowid) ON DELETE CASCADE,
        prefix BYTEA NOT NULL,
        suffix BYTEA NOT NULL
    );
    CREATE TABLE uidvalidity_counter (id INTEGER PRIMARY KEY CHECK (id = 0), last BIGINT NOT NULL);
    INSERT INTO uidvalidity_counter VALUES (0, 0);
    CREATE TABLE folders (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        username TEXT NOT NULL,
        name TEXT NOT NULL,
        uidvalidity BIGINT NOT NULL,
        uidnext BIGINT NOT NULL DEFAULT 1,
        subscribed BOOLEAN NOT NULL DEFAULT TRUE,
        UNIQUE (username, name)
    );
    CREATE TABLE entries (
        folder_id BIGINT NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid BIGINT NOT NULL,
        message BIGINT NOT NULL REFERENCES messages(rowid) ON DELETE CASCADE,
        root BIGINT NOT NULL REFERENCES messages(rowid) ON DELETE CASCADE,
        flags TEXT NOT NULL DEFAULT '',
        internaldate DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (folder_id, uid)
    );
    CREATE INDEX entries_message ON entries (message);
    CREATE INDEX entries_root ON entries (root);
    CREATE TABLE queue (
        message TEXT NOT NULL,
        recipient TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt DOUBLE PRECISION NOT NULL,
        first_attempt DOUBLE PRECISION NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        warned BOOLEAN NOT NULL DEFAULT FALSE,
        claimed_until DOUBLE PRECISION,  -- a frontend's pass holds it until then (real time, _queue.py)
        claimed_by TEXT,
        PRIMARY KEY (message, recipient)
    );
    CREATE INDEX queue_due ON queue (next_attempt);
    CREATE TABLE attempts (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message TEXT NOT NULL,
        recipient TEXT NOT NULL,
        hop INTEGER NOT NULL DEFAULT 0,
        host TEXT NOT NULL,
        preference INTEGER,
        code INTEGER NOT NULL,
        reply TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        dialogue TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX attempts_message ON attempts (message, id);
    CREATE TABLE message_auth (
        rowid BIGINT PRIMARY KEY REFERENCES messages(rowid) ON DELETE CASCADE,
        spf TEXT NOT NULL,
        dkim TEXT NOT NULL,
        dmarc TEXT NOT NULL,
        arc TEXT NOT NULL,
        report_json TEXT NOT NULL
    );
    -- every tag name given so far, unique case-insensitively (the key is lower(name))
    CREATE TABLE tag_names (folded TEXT PRIMARY KEY, name TEXT NOT NULL);
    -- the listed messages and the unread ones, kept by triggers in the writing transaction, in a row per
    -- writing connection (its backend's pid): one shared row would make every frontend's commits wait for
    -- each other's; count() adds the rows up
    CREATE TABLE tally (shard INTEGER PRIMARY KEY, total BIGINT NOT NULL, unread BIGINT NOT NULL);
    CREATE FUNCTION mailsandbox_tally() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        total_change BIGINT := 0;
        unread_change BIGINT := 0;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            IF NEW.parent IS NULL THEN
                total_change := 1;
                unread_change := (NOT NEW.read)::int;
            END IF;
        ELSIF TG_OP = 'DELETE' THEN
            IF OLD.parent IS NULL THEN
                total_change := -1;
                unread_change := -(NOT OLD.read)::int;
            END IF;
        ELSIF NEW.parent IS NULL THEN
            unread_change := (NOT NEW.read)::int - (NOT OLD.read)::int;
        END IF;
        IF total_change != 0 OR unread_change != 0 THEN
            INSERT INTO tally AS t VALUES (pg_backend_pid(), total_change, unread_change)
                ON CONFLICT (shard) DO UPDATE SET total = t.total + excluded.total, unread = t.unread + excluded.unread;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER tally_rows AFTER INSERT OR DELETE OR UPDATE OF read ON messages
        FOR EACH ROW EXECUTE FUNCTION mailsandbox_tally();
    CREATE FUNCTION mailsandbox_tally_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM tally;
        RETURN NULL;
    END $$;
    CREATE TRIGGER tally_truncate AFTER TRUNCATE ON messages
        FOR EACH STATEMENT EXECUTE FUNCTION mailsandbox_tally_truncate();
    -- the relay's clock, shared by every frontend (relay/queue.py reads it when it runs on a database)
    CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
]

# The substring filters' trigram index: pg_trgm is a contrib module that a database owner may install
# (trusted since PostgreSQL 13); without it the filters scan, with the same results.
TRIGRAM_INDEX = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS messages_headers_trgm ON messages USING gin (headers gin_trgm_ops)"
    " WHERE parent IS NULL",
]


def migrate(conn: psycopg.Connection) -> int:
    """Bring the schema to the newest version, in one transaction; returns the version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO schema_version VALUES (0)")
            version = 0
        else:
            version = int(row[0])
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute(script)  # a literal of this module
            conn.execute("UPDATE schema_version SET version = %s", (number,))
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            for statement in TRIGRAM_INDEX:
                conn.execute(statement)
    except psycopg.Error:
        pass  # not allowed to install pg_trgm: substring filters scan
    return len(MIGRATIONS)

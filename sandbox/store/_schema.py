"""Versioned schema migrations; PRAGMA user_version records how far a database has come."""

from __future__ import annotations

import sqlite3

# What headers_tri holds for a message: the columns the subject:, from: and to: filters match, as stored.
HEADERS_TEXT = "subject || char(10) || from_name || char(10) || from_addr || char(10) || to_json"

# A message is hidden once its rowid is in `doomed` (a large delete: sqlite.py `hide_rows`; the reaper in
# _clear.py deletes it later). The condition every read of messages, or of what hangs off them, adds for
# `column` (a rowid): with nothing doomed SQLite reads the EXISTS once and tests nothing a row; else one
# look-up in doomed a row.
def shown(column: str) -> str:
    return f"(NOT EXISTS (SELECT 1 FROM doomed) OR {column} NOT IN (SELECT rowid FROM doomed))"


# The tally no longer counts a hidden message (its hiding took it off): deleting or marking one later
# leaves the counts as they are.
TALLY_DELETE = f"""
    CREATE TRIGGER tally_delete AFTER DELETE ON messages WHEN old.parent IS NULL AND {shown("old.rowid")} BEGIN
        UPDATE tally SET total = total - 1, unread = unread - (old.read = 0);
    END;
"""
_TALLY_READ = f"""
    CREATE TRIGGER tally_read AFTER UPDATE OF read ON messages WHEN new.parent IS NULL AND {shown("new.rowid")}
    BEGIN
        UPDATE tally SET unread = unread + (new.read = 0) - (old.read = 0);
    END;
"""

MIGRATIONS: list[str] = [
    # 1: messages, raw bytes apart, full-text index, folders with UIDs, relay queue and trace.
    """
    CREATE TABLE messages (
        rowid INTEGER PRIMARY KEY,
        id TEXT UNIQUE NOT NULL,
        parent INTEGER REFERENCES messages(rowid) ON DELETE CASCADE,
        created REAL NOT NULL,
        message_id TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        from_name TEXT NOT NULL DEFAULT '',
        from_addr TEXT NOT NULL DEFAULT '',
        to_json TEXT NOT NULL DEFAULT '[]',
        cc_json TEXT NOT NULL DEFAULT '[]',
        bcc_json TEXT NOT NULL DEFAULT '[]',
        reply_to_json TEXT NOT NULL DEFAULT '[]',
        date REAL,
        size INTEGER NOT NULL DEFAULT 0,
        attachments INTEGER NOT NULL DEFAULT 0,
        snippet TEXT NOT NULL DEFAULT '',
        read INTEGER NOT NULL DEFAULT 0,
        envelope_json TEXT NOT NULL DEFAULT '{}',
        username TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX messages_listing ON messages(parent, created DESC, rowid DESC);
    CREATE INDEX messages_unread ON messages(read) WHERE parent IS NULL AND read = 0;
    CREATE TABLE message_raw (rowid INTEGER PRIMARY KEY, raw BLOB NOT NULL);
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        subject, sender, recipients, body, tokenize = "unicode61 remove_diacritics 2"
    );
    CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL,
        name TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uidnext INTEGER NOT NULL DEFAULT 1,
        subscribed INTEGER NOT NULL DEFAULT 1,
        UNIQUE(user, name)
    );
    CREATE TABLE entries (
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        message INTEGER NOT NULL REFERENCES messages(rowid) ON DELETE CASCADE,
        root INTEGER NOT NULL,
        flags TEXT NOT NULL DEFAULT '',
        internaldate REAL NOT NULL,
        PRIMARY KEY (folder_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX entries_message ON entries(message);
    CREATE INDEX entries_root ON entries(root);
    CREATE TABLE queue (
        message TEXT NOT NULL,
        recipient TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL,
        first_attempt REAL NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        warned INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (message, recipient)
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        message TEXT NOT NULL,
        recipient TEXT NOT NULL,
        hop INTEGER NOT NULL DEFAULT 0,
        host TEXT NOT NULL,
        preference INTEGER,
        code INTEGER NOT NULL,
        reply TEXT NOT NULL,
        at REAL NOT NULL,
        dialogue TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX attempts_message ON attempts(message, id);
    """,
    # 2: the last UIDVALIDITY handed out, so a new folder costs one row update instead of a scan of all
    # folders; it survives the folder that held it, so a re-created name never gets an old value.
    """
    CREATE TABLE uidvalidity_counter (id INTEGER PRIMARY KEY CHECK (id = 0), last INTEGER NOT NULL);
    INSERT INTO uidvalidity_counter SELECT 0, coalesce(max(uidvalidity), 0) FROM folders;
    """,
    # 3: a large message's bytes as rows of a megabyte (message_raw.chunks names them), written in
    # transactions of their own before the one that stores the message; raw_pending lists the sets still
    # being written (left by a crash: removed at start). AUTOINCREMENT: a set's number is never reused.
    """
    ALTER TABLE message_raw ADD COLUMN chunks INTEGER;
    CREATE TABLE raw_pending (stage INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL);
    CREATE TABLE raw_chunks (
        stage INTEGER NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (stage, seq)
    );
    """,
    # 4: inline parts (cid: images) counted apart from attachments, for has:inline; messages stored before
    # count none. Tagged messages indexed, so the listing's list of tags reads only those.
    """
    ALTER TABLE messages ADD COLUMN inline INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_tagged ON messages(tags) WHERE tags != '';
    """,
    # 5: email authentication results (sandbox/auth), one row per checked message; the per-method words
    # are columns for search (auth:dkim=fail), the whole report is JSON. Deleting a message deletes its row.
    """
    CREATE TABLE message_auth (
        rowid INTEGER PRIMARY KEY REFERENCES messages(rowid) ON DELETE CASCADE,
        spf TEXT NOT NULL,
        dkim TEXT NOT NULL,
        dmarc TEXT NOT NULL,
        arc TEXT NOT NULL,
        report_json TEXT NOT NULL
    );
    """,
    # 6: look-ups by Message-ID header (--ignore-duplicate-ids), only over originals that have one.
    """
    CREATE INDEX messages_message_id ON messages(message_id) WHERE parent IS NULL AND message_id != '';
    """,
    # 7: every tag name given so far, unique case-insensitively (as Mailpit's tags table): a new message's
    # tags take the spelling the store has in one look-up, not a scan of the tagged messages.
    """
    CREATE TABLE tag_names (name TEXT PRIMARY KEY COLLATE NOCASE) WITHOUT ROWID;
    """,
    # 8: a relay copy keeps only the bytes its hops added (prefix: Received: and signature fields, suffix:
    # a rewriting hop's footer); its raw is prefix + its original's + suffix. Copies stored before keep
    # their own message_raw row and read as before.
    """
    CREATE TABLE relayed (
        rowid INTEGER PRIMARY KEY REFERENCES messages(rowid) ON DELETE CASCADE,
        prefix BLOB NOT NULL,
        suffix BLOB NOT NULL
    );
    """,
    # 9: a contentless full-text index (the text was kept twice: in the index's own content table and in
    # the raw message). FTS5 here (SQLite 3.40) can only take a row out of a contentless index given the
    # values it was given, so message_text keeps them, zstd-packed JSON (rows copied here stay plain JSON
    # TEXT). Raw bytes and chunks written from now on are zstd-packed (zstd = 1); older rows read as they are.
    """
    CREATE VIRTUAL TABLE messages_fts_new USING fts5(
        subject, sender, recipients, body, content = '', tokenize = "unicode61 remove_diacritics 2"
    );
    INSERT INTO messages_fts_new (rowid, subject, sender, recipients, body)
        SELECT rowid, subject, sender, recipients, body FROM messages_fts;
    CREATE TABLE message_text (rowid INTEGER PRIMARY KEY, text BLOB NOT NULL);
    INSERT INTO message_text (rowid, text)
        SELECT rowid, json_array(subject, sender, recipients, body) FROM messages_fts;
    DROP TABLE messages_fts;
    ALTER TABLE messages_fts_new RENAME TO messages_fts;
    ALTER TABLE message_raw ADD COLUMN zstd INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE raw_chunks ADD COLUMN zstd INTEGER NOT NULL DEFAULT 0;
    """,
    # 10: a trigram index of the fields the commonest substring filters read (subject:, from:, to:), so
    # they look up candidates instead of scanning every row; the LIKE still decides (_search.py). Contentless
    # and without positions (detail=none: ~130 bytes a message); its text is HEADERS_TEXT over the row,
    # which never changes, so a delete can give FTS5 the values back.
    f"""
    CREATE VIRTUAL TABLE headers_tri USING fts5(text, content = '', detail = none, tokenize = 'trigram');
    INSERT INTO headers_tri (rowid, text) SELECT rowid, {HEADERS_TEXT} FROM messages WHERE parent IS NULL;
    """,
    # 11: the listed messages and the unread ones, kept by triggers in the writing transaction: counting
    # them walked an index, 27 ms at 100,000 messages, after every commit (each list, each stats frame).
    # A delete of everything drops TALLY_DELETE around its truncation, which SQLite skips on a table
    # with a delete trigger (_DeleteAll).
    """
    CREATE TABLE tally (id INTEGER PRIMARY KEY CHECK (id = 1), total INTEGER NOT NULL, unread INTEGER NOT NULL);
    INSERT INTO tally (id, total, unread) SELECT 1, count(*), coalesce(sum(read = 0), 0) FROM messages
        WHERE parent IS NULL;
    CREATE TRIGGER tally_insert AFTER INSERT ON messages WHEN new.parent IS NULL BEGIN
        UPDATE tally SET total = total + 1, unread = unread + (new.read = 0);
    END;
    CREATE TRIGGER tally_read AFTER UPDATE OF read ON messages WHEN new.parent IS NULL BEGIN
        UPDATE tally SET unread = unread + (new.read = 0) - (old.read = 0);
    END;
    CREATE TRIGGER tally_delete AFTER DELETE ON messages WHEN old.parent IS NULL BEGIN
        UPDATE tally SET total = total - 1, unread = unread - (old.read = 0);
    END;
    """,
    # 12: the zstd dictionaries raw messages are packed with (_packing.RawPacker), by zstd's dictionary ID;
    # a delete of everything keeps them (rows packed with one may still be arriving).
    """
    CREATE TABLE zstd_dicts (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
    """,
    # 13: a large delete hides its messages at once, a row each here (originals and their relay copies);
    # the reaper deletes them later (_clear.py). Every read skips them (`shown`); the tally's triggers
    # leave a hidden message alone (its hiding took it off the counts).
    f"""
    CREATE TABLE doomed (rowid INTEGER PRIMARY KEY);
    DROP TRIGGER tally_read;
    DROP TRIGGER tally_delete;
    {_TALLY_READ}
    {TALLY_DELETE}
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version, one migration per transaction."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript("BEGIN IMMEDIATE;\n" + script + f"\nPRAGMA user_version = {number};\nCOMMIT;")
    return len(MIGRATIONS)

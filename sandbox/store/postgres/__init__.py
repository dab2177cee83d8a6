"""The PostgreSQL backend (`--db postgresql://...`): several frontends share one database. Importing it
needs psycopg (`pip install mailsandbox[postgresql]`); the SQLite default never does."""

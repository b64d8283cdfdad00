"""The task lifecycle written once, above a dialect per database (PostgreSQL, SQLite): lifecycle.py decides, each
dialect's queries say it in its SQL (queries.py names the statements), writer.py commits in groups."""

"""The PostgreSQL dialect of the lifecycle (several servers on one database): board.py connects SqlBoard to it
(writer session, pool, listener), queries.py is its SQL, schema.py its tables and migrations, rows.py its columns,
listen.py the NOTIFY hints, logs.py the task logs every server reads. Nothing here is imported without psycopg
installed; import board.py for PostgresBoard."""

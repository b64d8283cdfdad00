"""The SQLite dialect of the lifecycle (one file, the database the only truth): board.py connects SqlBoard to it
(writer session, readers, hints), queries.py is its SQL, siblings.py the hints between the engine processes of one
server (--procs)."""

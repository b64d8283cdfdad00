"""The engine: imports nothing from grpc or taskservice.v1 (a test holds this).

- model/: tasks, states, errors, events, schedules.
- handlers/: task types, the handler's context, running a handler in a thread or a worker process, paths, logs.
- engine/: WorkerManager and the parts it composes (admission, workers, finishing, watchdog, watching...).
- board/: where task state changes: the lifecycle in SQL over SQLite or PostgreSQL.
"""

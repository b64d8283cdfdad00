"""The engine's vocabulary: tasks, their states, progress and errors (models), the exceptions every layer maps
(errors), the per-task event sequences watchers follow (events), and schedules (schedules). Plain data and rules;
nothing here runs a thread or touches a database."""

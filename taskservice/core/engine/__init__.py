"""The engine's parts, composed by manager.WorkerManager: a Submit admitted (admission, validation), tasks claimed
and run on worker threads (workers), ends decided and written (finishing, ended), time-driven work (watchdog),
stops (stopping), the runs of this node and their watchers (runs, watching, relay), schedules fired (scheduling),
retention, listeners (observe), and the engine's settings, clock and node name (config, clock, nodes)."""

"""Task types and what runs them: the registry and a handler's signature as the schema of its args (registry,
type_info, constraints), the context a handler gets (context), one run of a handler (execution), worker processes
(process_pool, process_child), path arguments under the data root (paths, beneath), task logs (logs) and retry
policies (retry)."""

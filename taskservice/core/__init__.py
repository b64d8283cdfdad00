"""The engine: task types, worker manager, events and storage. Imports nothing from grpc or taskservice.v1."""

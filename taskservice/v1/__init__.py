"""Generated from protos/taskservice/v1/task_service.proto by `make proto`. Do not edit."""

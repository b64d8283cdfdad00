"""taskservice: a gRPC task service. Submit long jobs, ask their state, stop them, watch their progress live."""

__version__ = "0.1.0"

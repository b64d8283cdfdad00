"""`make bench`: throughput and latency of the real server against bare gRPC baselines, in one run."""

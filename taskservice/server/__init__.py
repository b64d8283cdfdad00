"""The gRPC server: the only code of taskservice that imports grpc."""

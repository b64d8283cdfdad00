from tests.support.fixtures import server_process

__all__ = ["server_process"]

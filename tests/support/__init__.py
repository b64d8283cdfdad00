"""Helpers shared by test suites: a real server process and its pytest fixtures."""

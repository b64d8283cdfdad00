"""Test suite of taskservice (a package so that tests can import tests.support)."""

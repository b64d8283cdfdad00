"""Tests of the typed Python client, taskservice.client."""

"""Tests of the taskctl command-line client, run as a subprocess."""

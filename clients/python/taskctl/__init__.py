"""taskctl: the command-line client of taskservice."""

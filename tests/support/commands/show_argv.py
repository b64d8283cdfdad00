"""Prints its arguments as one JSON line: {"argc": len(sys.argv), "args": sys.argv[1:]}."""

from __future__ import annotations

import json
import sys

print(json.dumps({"argc": len(sys.argv), "args": sys.argv[1:]}), flush=True)

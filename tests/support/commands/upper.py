"""`upper.py INPUT --out=OUTPUT CODE`: writes INPUT upper-cased to OUTPUT, then exits with CODE."""

from __future__ import annotations

import sys
from pathlib import Path

source, out_flag, code = sys.argv[1:]
Path(out_flag.removeprefix("--out=")).write_text(Path(source).read_text().upper())
print(f"wrote {out_flag}", flush=True)
sys.exit(int(code))

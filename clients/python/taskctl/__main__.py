"""`python -m taskctl`: the same as the installed `taskctl` script."""

from taskctl.cli import main

raise SystemExit(main())

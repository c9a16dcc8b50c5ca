"""``python -m delgrad_hw`` runs the command-line tool."""

from .cli import main

raise SystemExit(main())

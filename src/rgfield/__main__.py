"""``python -m rgfield`` runs the command line."""

import sys

from rgfield.cli import main

sys.exit(main())

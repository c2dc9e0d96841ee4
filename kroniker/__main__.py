"""`python -m kroniker` is the `kroniker` command."""

import sys

from kroniker.cli import main

sys.exit(main())

"""``python -m devtools <command>``: see devtools/cli.py."""

import sys

from devtools.cli import main

sys.exit(main())

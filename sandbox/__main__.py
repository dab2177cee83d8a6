"""python -m sandbox -> the mailsandbox command."""

import sys

from sandbox.cli import main

sys.exit(main())

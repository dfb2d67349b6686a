import sys

from nbops.cli.main import main

sys.exit(main())

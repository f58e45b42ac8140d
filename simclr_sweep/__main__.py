import sys

from simclr_sweep.cli import main

sys.exit(main())

import sys

from spiking.cli import main

sys.exit(main())

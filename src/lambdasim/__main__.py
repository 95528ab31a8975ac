import sys

from lambdasim.server.cli import main

sys.exit(main())

import sys

from ailabber.cli.main import main

sys.exit(main())

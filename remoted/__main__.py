import sys

from remoted.main import main

sys.exit(main())

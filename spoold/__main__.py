import sys

from spoold.main import main

sys.exit(main())

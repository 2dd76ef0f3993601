from remoted.main import main
import sys
sys.exit(main())

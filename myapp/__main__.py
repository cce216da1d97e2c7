import sys

from myapp.cli import main

sys.exit(main())

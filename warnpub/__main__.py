import sys

from warnpub.cli.main import main

sys.exit(main())

import sys

from linseq.cli.main import main

sys.exit(main())

import sys

from attribcheck.lab.bench.__main__ import main

if __name__ == "__main__":
    sys.exit(main())

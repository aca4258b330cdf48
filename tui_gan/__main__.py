import sys

from .cli import main

if __name__ == "__main__":  # importable (multiprocessing, tools) without starting a run
    sys.exit(main())

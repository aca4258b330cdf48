import sys

from .main import main

if __name__ == "__main__":  # importable (multiprocessing's spawn, tools) without starting a run
    sys.exit(main())

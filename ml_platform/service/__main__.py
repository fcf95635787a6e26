"""``python -m ml_platform.service``: the same as ``ml-platform serve-hooks``."""

from ml_platform.cli import main

if __name__ == "__main__":
    import sys

    sys.argv = [sys.argv[0], "serve-hooks", *sys.argv[1:]]
    main()

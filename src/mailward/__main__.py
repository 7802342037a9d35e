"""``python -m mailward``: the same command line as the ``mailward`` script."""

from mailward.cli import main

if __name__ == "__main__":
    main()

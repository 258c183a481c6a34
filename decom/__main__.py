"""``python -m decom ...``: the decom command line (``python -m decom jar`` prints the jar path)."""

from ._cli.main import main

if __name__ == "__main__":
    main(prog_name="decom")

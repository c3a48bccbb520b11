"""Training and MC-inference benchmark; same as `hwgen bench train [--json F] [--model M]`."""

import sys

from hwgen.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "train", *sys.argv[1:]]))

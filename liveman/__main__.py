"""Entry point for ``liveman``; the cluster manager lands with its own issue."""

import sys


def main() -> int:
    print("liveman: not yet implemented (see the liveman issue)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())

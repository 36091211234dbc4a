"""``python -m experiments.predict``: the ``transferability-predict`` command."""

import sys

from experiments.entry import predict

if __name__ == "__main__":
    sys.exit(predict())

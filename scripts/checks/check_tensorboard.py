#!/usr/bin/env python3
"""Reads a TensorBoard event file with the `tensorboard` package's own reader and prints its
scalars, failing if the file does not parse or holds none.

Run by hand (`pip install tensorboard`) on a file Collie wrote, for example the one the monitor
test leaves behind when asked to:

    COLLIE_TENSORBOARD_OUTPUT=/tmp/tb swift test --filter MonitorTests/testTensorBoardFileDecodesToTheEventsWritten
    python3 scripts/checks/check_tensorboard.py /tmp/tb/events.out.tfevents.*

With --expect-tags TAG,TAG... it also fails unless every listed tag has at least one scalar.

The PyPI packages it imports are pinned in scripts/requirements.txt.
"""

import argparse
import sys

from tensorboard.backend.event_processing import event_file_loader
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", help="events.out.tfevents.* files")
    parser.add_argument("--expect-tags", default="", help="comma-separated tags that must be present")
    args = parser.parse_args()
    ok = True
    for path in args.files:
        print(f"== {path}")
        # 1. The raw record reader: every record's CRCs are checked, every Event parsed.
        events = list(event_file_loader.EventFileLoader(path).Load())
        if not events or events[0].file_version != "brain.Event:2":
            print("  first event is not file_version brain.Event:2")
            ok = False
        print(f"  {len(events)} events; first: file_version={events[0].file_version!r} wall_time={events[0].wall_time}")
        # 2. TensorBoard's accumulator, as the dashboard loads scalars.
        accumulator = EventAccumulator(path, size_guidance={"scalars": 0, "tensors": 0})
        accumulator.Reload()
        tags = accumulator.Tags()
        scalars = {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in tags.get("scalars", [])}
        # Newer data-compat paths surface simple_value summaries as tensors; read those too.
        for tag in tags.get("tensors", []):
            scalars.setdefault(tag, [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in accumulator.Tensors(tag)])
        if not scalars:
            print("  no scalars")
            ok = False
        for tag in sorted(scalars):
            values = ", ".join(f"{step}: {value:.6g}" for step, value in scalars[tag])
            print(f"  {tag:28s} {values}")
        for tag in filter(None, args.expect_tags.split(",")):
            if tag not in scalars:
                print(f"  missing expected tag {tag}")
                ok = False
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

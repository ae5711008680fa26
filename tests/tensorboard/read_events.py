"""Reads a run directory's TensorBoard event files with TensorBoard's own EventAccumulator
(the reader behind `tensorboard --logdir`) and prints what it found as one JSON object:
{"scalars": {tag: [[step, value], ...]}, "text": {tag: [[step, text], ...]},
 "histograms": {tag: [[step, num, min, max, sum of bucket counts], ...]}}.
Used by tests/tensorboard.rs and tests/resume.rs; run with the set-up's Python."""

import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ALL = {"scalars": 0, "tensors": 0, "histograms": 0}


def main(run_dir):
    acc = EventAccumulator(run_dir, size_guidance=ALL)
    acc.Reload()
    tags = acc.Tags()
    out = {"scalars": {}, "text": {}, "histograms": {}}
    for tag in tags["scalars"]:
        out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
    for tag in tags["tensors"]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name == "text":
            out["text"][tag] = [[e.step, e.tensor_proto.string_val[0].decode()] for e in acc.Tensors(tag)]
    for tag in tags["histograms"]:
        out["histograms"][tag] = [
            [e.step, e.histogram_value.num, e.histogram_value.min, e.histogram_value.max,
             sum(e.histogram_value.bucket)]
            for e in acc.Histograms(tag)
        ]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])

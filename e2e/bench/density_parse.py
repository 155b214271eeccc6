#!/usr/bin/env python3
"""density_parse.py — the pod startup latencies the node suite's Density benchmarks write
(performance-latency--density_create_*.json: p50/p90/p99/p100 in ms of API create to Running
seen through a watch), per benchmark, as one JSON object:

    density_parse.py RUNTIME REPORT_DIR   (REPORT_DIR: the suite's $OUT)

{"runtime": R, "benchmarks": {"35 pods at once": {"p50_ms": .., "p90_ms": .., "p99_ms": ..,
 "p100_ms": .., "spec_passed": bool}, "10 pods in turn over 50": {...}}}. A benchmark that
wrote no latencies is left out (its spec failed before it measured). spec_passed is false
where the spec failed after measuring (e.g. on its resource half).
"""
import glob
import json
import os
import sys
import xml.etree.ElementTree as ET

BENCHMARKS = {
    "density_create_batch_35_0_0_": "35 pods at once",
    "density_create_sequence_10_50_0_": "10 pods in turn over 50",
}


def label_of(test):
    return next((label for prefix, label in BENCHMARKS.items() if test.startswith(prefix)), None)


def failed_specs(report):
    """Descriptions of the specs that failed, from the JUnit report(s)."""
    failed = set()
    for path in glob.glob(os.path.join(report, "junit*.xml")):
        try:
            for tc in ET.parse(path).iter("testcase"):
                if tc.find("failure") is not None or tc.find("error") is not None:
                    failed.add(tc.get("name", ""))
        except ET.ParseError:
            continue
    return failed


def main():
    runtime, report = sys.argv[1], sys.argv[2]
    failed = failed_specs(report)
    found = {}
    for path in sorted(glob.glob(os.path.join(report, "performance-latency--density_create_*.json"))):
        with open(path) as f:
            perf = json.load(f)
        label = label_of(perf.get("labels", {}).get("test", ""))
        items = [i for i in perf.get("dataItems", []) if i.get("labels", {}).get("datatype") == "latency"]
        if label is None or not items or items[0].get("unit") != "ms":
            continue
        data = items[0]["data"]
        desc = perf["labels"].get("desc", "")
        found[label] = {
            "p50_ms": round(data["Perc50"], 1),
            "p90_ms": round(data["Perc90"], 1),
            "p99_ms": round(data["Perc99"], 1),
            "p100_ms": round(data["Perc100"], 1),
            "spec_passed": not any(desc and desc in name for name in failed),
        }
    print(json.dumps({"runtime": runtime, "benchmarks": found}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

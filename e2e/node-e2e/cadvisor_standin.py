#!/usr/bin/env python3
"""cadvisor_standin.py — pushes a stand-in for gcr.io/cadvisor/cadvisor:v0.47.2, the image
the node suite's Density specs run (host network, port 8090) to sample resource usage. The
offline kit lacks it; the stand-in only keeps running (and stops at once on SIGTERM), so the
specs get to their pods. It serves nothing: the specs' resource samples stay empty.

    cadvisor_standin.py --kit CRITEST_KIT [--registry 127.0.0.1:5000] [--busybox PATH]
"""
import argparse
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kit", required=True, help="the critest kit (its build_images.py is used)")
    ap.add_argument("--registry", default="127.0.0.1:5000")
    ap.add_argument("--busybox", default="/bin/busybox", help="a static busybox (Debian's busybox-static)")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.kit))
    import build_images as kit  # noqa: E402
    from kitten import push  # noqa: E402

    with open(args.busybox, "rb") as f:
        busybox = f.read()
    tree = kit.Tree().dir("bin").file("bin/busybox", busybox, 0o755).dir("tmp", 0o1777)
    loop = "trap 'exit 0' TERM; while :; do /bin/busybox sleep 1; done"
    img = kit.Image([kit.Layer(tree, "cadvisor stand-in: a static busybox that waits")],
                    {"Entrypoint": ["/bin/busybox", "sh", "-c", loop, "cadvisor-stand-in"]},
                    "cadvisor-stand-in")
    push(kit, args.registry, "cadvisor/cadvisor", "v0.47.2", img)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""kitten.py — pushes a stand-in for registry.k8s.io/e2e-test-images/kitten:1.8, the image
the node suite's ImageVolume specs mount as a volume (the offline kit lacks it). The specs
read `data.json` (naming kitten.jpg) and `etc/os-release` (an Alpine release file) through
the volume (and, with subPath etc, `passwd`), so that is what the stand-in holds.

    kitten.py --kit CRITEST_KIT [--registry 127.0.0.1:5000]
"""
import argparse
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kit", required=True, help="the critest kit (its build_images.py is used)")
    ap.add_argument("--registry", default="127.0.0.1:5000")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.kit))
    import build_images as kit  # noqa: E402

    tree = (kit.Tree()
            .file("data.json", '{"name": "kitten", "image": "kitten.jpg"}\n')
            .file("kitten.jpg", bytes(range(256)) * 16)
            .file("etc/os-release", 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.0\n'
                  'PRETTY_NAME="Alpine Linux v3.20"\n')
            .file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n")
            .file("etc/group", "root:x:0:root\nnobody:x:65534:\n"))
    img = kit.Image([kit.Layer(tree, "kitten stand-in: data.json, kitten.jpg, etc/os-release")],
                    {"Cmd": ["/bin/sh"]}, "kitten")
    push(kit, args.registry, "e2e-test-images/kitten", "1.8", img)
    return 0


def push(kit, registry, repo, tag, img):
    """Pushes one image of the kit's build_images (layers, config, manifest) as repo:tag."""
    reg = kit.Registry(registry)
    manifest, media_type = img.manifest(False)
    for layer in img.layers:
        reg.put_blob(repo, layer.digest, layer.blob)
    reg.put_blob(repo, img.config_digest, img.config_blob)
    reg.put_manifest(repo, tag, manifest, media_type)
    print(f"pushed {registry}/{repo}:{tag}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

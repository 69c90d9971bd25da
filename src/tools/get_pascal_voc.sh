#!/usr/bin/env bash
# Download Pascal VOC 2007 + 2012 and lay it out the way the `pascal` dataset reads it.
#
#   src/tools/get_pascal_voc.sh [VOC_DIR]      (VOC_DIR: default data/voc of this repository)
#
# Run it by hand: it fetches about 3.5 GB from the network. Nothing else (tests, make, training) runs it.
# Afterwards VOC_DIR holds
#   images/                                 every JPEG of VOC2007 trainval + test and VOC2012 trainval
#   annotations/pascal_trainval0712.json    VOC2007 + VOC2012 trainval boxes, COCO format (training)
#   annotations/pascal_test2007.json        VOC2007 test boxes, COCO format (test.py)
#   VOCdevkit/VOC2007/                      the xml annotations and image lists the VOC07 AP is computed from
# The COCO-format files are the ones published with Detectron (PASCAL_VOC.zip). When a server is down,
# point VOC_URL (the folder holding voc2007/ and voc2012/) or VOC_JSON_URL at a mirror.
set -euo pipefail

case "${1:-}" in
  -h|--help) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
  -*) echo "error: $1: unknown option; usage: $0 [VOC_DIR] (see --help)" >&2; exit 2 ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../../data/voc}"
voc_url="${VOC_URL:-http://host.robots.ox.ac.uk/pascal/VOC}"
json_url="${VOC_JSON_URL:-https://storage.googleapis.com/coco-dataset/external/PASCAL_VOC.zip}"
python="${PYTHON:-python3}"

download() {  # download URL FILE, with whichever of curl / wget is installed
  if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 3 -o "$2" "$1"
  else
    wget -O "$2" "$1"
  fi
}

mkdir -p "$out"
cd "$out"

# the three archives unpack into VOCdevkit/VOC2007 and VOCdevkit/VOC2012
for archive in voc2007/VOCtrainval_06-Nov-2007.tar voc2007/VOCtest_06-Nov-2007.tar \
               voc2012/VOCtrainval_11-May-2012.tar; do
  name="$(basename "$archive")"
  echo "== $name"
  download "$voc_url/$archive" "$name"
  tar xf "$name"
  rm "$name"
done

# one flat image folder: VOC file names (000005.jpg, 2008_000008.jpg) never collide across the years
mkdir -p images
cp -a VOCdevkit/VOC2007/JPEGImages/. images/
cp -a VOCdevkit/VOC2012/JPEGImages/. images/

echo "== PASCAL_VOC.zip (COCO-format annotations)"
download "$json_url" PASCAL_VOC.zip
"$python" -m zipfile -e PASCAL_VOC.zip voc_json
mkdir -p annotations
mv voc_json/PASCAL_VOC/pascal_*.json annotations/
rm -r voc_json PASCAL_VOC.zip

# training uses 07+12 trainval as one file; each part numbers its annotations from 1, so shift them
"$python" - annotations <<'PY'
import json
import os
import sys

folder = sys.argv[1]
merged = None
for part in ("train2012", "val2012", "train2007", "val2007"):
    with open(os.path.join(folder, f"pascal_{part}.json")) as f:
        data = json.load(f)
    if merged is None:
        merged = dict(data, images=[], annotations=[])
    shift = len(merged["annotations"])
    for ann in data["annotations"]:
        ann["id"] += shift
    merged["images"] += data["images"]
    merged["annotations"] += data["annotations"]
    print(f"pascal_{part}.json: {len(data['images'])} images, {len(data['annotations'])} boxes")
target = os.path.join(folder, "pascal_trainval0712.json")
with open(target + ".tmp", "w") as f:
    json.dump(merged, f)
os.replace(target + ".tmp", target)
print(f"{target}: {len(merged['images'])} images, {len(merged['annotations'])} boxes")
PY
echo "Pascal VOC is ready in $(pwd)"

"""Write PNGs of chosen frames of a clip, raw and with the truth drawn on.

    python preview.py CLIP_DIR OUT_PREFIX [--frames 0,30] [--overlay]
"""
import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fluoro_truth as ft  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("clip")
    ap.add_argument("out")
    ap.add_argument("--frames", default="0")
    ap.add_argument("--overlay", action="store_true")
    a = ap.parse_args()
    frames = ft.read_y4m(Path(a.clip) / "frames.y4m")
    truth = json.loads((Path(a.clip) / "truth.json").read_text())
    for i in [int(x) for x in a.frames.split(",")]:
        im = Image.fromarray(frames[i]).convert("RGB")
        if a.overlay:
            d = ImageDraw.Draw(im)
            for v in truth["frames"][i]["vertebrae"]:
                c = [tuple(p) for p in v["corners_px"]]
                d.line(c + [c[0]], fill=(255, 60, 60) if not v["occluded"] else (255, 200, 0), width=1)
                d.ellipse([c[0][0] - 2, c[0][1] - 2, c[0][0] + 2, c[0][1] + 2], outline=(0, 255, 0))
                d.text(((c[0][0] + c[2][0]) / 2 - 8, (c[0][1] + c[2][1]) / 2 - 5), v["label"], fill=(0, 255, 255))
        im.save(f"{a.out}_{i:03d}.png")
        if a.overlay:
            Image.fromarray(frames[i]).save(f"{a.out}_{i:03d}_raw.png")


if __name__ == "__main__":
    main()

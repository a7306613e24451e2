"""Build the bundled demo: demo/sagittal_sweep.dcm (+ .truth.json).

    python make_demo.py [--out-dir ../../demo]

One synthetic phantom sweep (seed DEMO_SEED, a held-out seed; fixed demo
plan: sacrum -> up to L3-L4 -> back down to L4-L5 -> up to L2-L3, no
lift-off), written as ONE multi-frame Ultrasound Multi-frame Image Storage
object: 640x480 MONOCHROME2 8-bit, JPEG Baseline (each frame encoded by
Pillow, encapsulated with a basic offset table), Frame Time / Cine Rate, and
a Sequence of Ultrasound Regions giving the image region and its physical
pixel size. Deterministic: UIDs are derived from the seed.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from phantom_sagittal import RH, RW, RX, RY, SCREEN_H, SCREEN_W, Sweep  # noqa: E402

DEMO_SEED = 500001
JPEG_QUALITY = 55
MAX_BYTES = 4 * 1024 * 1024


def jpeg_bytes(frame: np.ndarray, quality: int) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(frame, "L").save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


def build_dataset(sw: Sweep, frames_jpeg):
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, PYDICOM_IMPLEMENTATION_UID, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage
    uid = lambda what: generate_uid(entropy_srcs=["spine-edge-demo", str(sw.seed), what])  # noqa: E731
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid("sop")
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "SPINEEDGE_DEMO"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL", "0001"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDateTime = "20261125"
    ds.AcquisitionDateTime = "20261125120000"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = "US"
    ds.Manufacturer = "spine-edge synthetic phantom"
    ds.ManufacturerModelName = "phantom_sagittal.py"
    ds.SoftwareVersions = "1"
    ds.InstitutionName = "SYNTHETIC"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic lumbar paramedian sagittal sweep"
    ds.SeriesDescription = "PSO sweep sacrum to L2-L3 (synthetic)"
    ds.BodyPartExamined = "LSPINE"
    ds.PatientName = "Phantom^Synthetic"
    ds.PatientID = "PHANTOM-0001"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientOrientation = ""
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = uid("series")
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageComments = ("SYNTHETIC PHANTOM - not patient data, not for clinical use. "
                        f"spine-edge models/training/phantom_sagittal.py seed {sw.seed}. "
                        "Image x = along the spine, cephalad to the right.")
    ds.BurnedInAnnotation = "YES"
    ds.LossyImageCompression = "01"
    raw = len(frames_jpeg) * SCREEN_W * SCREEN_H
    ds.LossyImageCompressionRatio = f"{raw / sum(len(f) for f in frames_jpeg):.2f}"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    # Image pixel / multi-frame / cine
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = SCREEN_H, SCREEN_W
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = len(frames_jpeg)
    ds.FrameIncrementPointer = pydicom.tag.Tag(0x0018, 0x1063)
    ds.FrameTime = f"{1000.0 / sw.fps:.1f}"
    ds.CineRate = sw.fps
    ds.RecommendedDisplayFrameRate = sw.fps
    ds.EffectiveDuration = f"{len(frames_jpeg) / sw.fps:.3f}"
    ds.StartTrim = 1
    ds.StopTrim = len(frames_jpeg)
    ds.TransducerType = "LINEAR"
    # US region calibration: one 2D tissue region = the image area of the screen
    r = Dataset()
    r.RegionSpatialFormat = 1
    r.RegionDataType = 1
    r.RegionFlags = 0
    r.RegionLocationMinX0 = RX
    r.RegionLocationMinY0 = RY
    r.RegionLocationMaxX1 = RX + RW - 1
    r.RegionLocationMaxY1 = RY + RH - 1
    r.PhysicalUnitsXDirection = 3
    r.PhysicalUnitsYDirection = 3
    r.PhysicalDeltaX = float(sw.sc.x_mm / 10.0)
    r.PhysicalDeltaY = float(sw.sc.y_mm / 10.0)
    r.ReferencePixelX0 = RW // 2
    r.ReferencePixelY0 = 0
    r.ReferencePixelPhysicalValueX = 0.0
    r.ReferencePixelPhysicalValueY = 0.0
    r.TransducerFrequency = int(sw.sc.freq_mhz * 1000)
    ds.SequenceOfUltrasoundRegions = [r]
    ds.PixelData = encapsulate(frames_jpeg, has_bot=True)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", default=str(HERE.parent.parent / "demo"))
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sw = Sweep(DEMO_SEED, demo=True)
    truth = sw.truth()
    assert not any(f["lift_off"] for f in truth["frames"])
    frames = [jpeg_bytes(sw.frame(i), JPEG_QUALITY) for i in range(len(sw))]
    ds = build_dataset(sw, frames)
    path = out / "sagittal_sweep.dcm"
    ds.save_as(str(path), enforce_file_format=True)
    (out / "sagittal_sweep.truth.json").write_text(json.dumps(truth, separators=(",", ":")) + "\n")
    size = path.stat().st_size
    assert size <= MAX_BYTES, f"demo is {size} bytes > 4 MiB: lower JPEG_QUALITY"
    seq = []
    for f in truth["frames"]:
        if not seq or seq[-1][0] != f["position"]:
            seq.append([f["position"], 0])
        seq[-1][1] += 1
    print(f"wrote {path}: {len(frames)} frames @ {sw.fps} fps ({len(frames) / sw.fps:.1f} s), "
          f"{size} bytes ({size / 2**20:.2f} MiB), JPEG q{JPEG_QUALITY}")
    print(" > ".join(f"{p}({n})" for p, n in seq))


if __name__ == "__main__":
    main()

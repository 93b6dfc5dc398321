"""What a run writes.

* :mod:`pipeline.output.tables`: the per-recording Parquet rows of every table;
* :mod:`pipeline.output.state`: which recordings a previous run finished (re-runs skip them);
* :mod:`pipeline.output.corpus`: Lhotse manifests, audio shards and the ZipVoice TSV;
* :mod:`pipeline.output.interop`: exports for other tools (``to-hf``: the Hugging Face export,
  :mod:`pipeline.output.hf_export` for its Parquet shards and :mod:`pipeline.output.hf_card` for its
  dataset card);
* :mod:`pipeline.output.run_files`: ``summary.json``, ``metrics.json``, the run manifest;
* :mod:`pipeline.output.report`: ``report.html``, the report a curator reads and listens to
  (clips in ``report_media/``).
"""

"""The dialogue TTS model (ZipVoice-Dialog style).

The commands, each a thin entry to its package: ``python -m model.train``, ``model.distill``,
``model.infer``, ``model.evaluate``, ``model.onnx_export``.

* :mod:`model.network`: the network (Zipformer, flow matching, students), its configuration and
  checkpoints (upstream ZipVoice directories included);
* :mod:`model.audio`: log-mel features and vocoders;
* :mod:`model.text`: the text front end (normalisation, G2P, token table);
* :mod:`model.training`: data, the training loop, distillation, EMA;
* :mod:`model.inference`: synthesis from a script and voice prompts;
* :mod:`model.export`: ONNX export and its runtime;
* :mod:`model.evaluation`: WER, cpWER, cpSIM, DNSMOS, turn-taking and RTF.
"""

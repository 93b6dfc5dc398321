"""Plain-torch Zipformer (ZipVoice's TTS variant), state-dict compatible with upstream.

Modules are split by job: ``scaling`` (activations, BiasNorm, schedules, regularisers),
``positional`` (relative and timestep encodings), ``attention``, ``layers`` (the
Zipformer2 layer and its blocks) and ``encoder`` (stacks and the TTS U-Net).
"""

from model.network.zipformer.encoder import GUIDANCE_SCALE_EMBED_DIM, TTSZipformer
from model.network.zipformer.scaling import ScheduledFloat, set_batch_count

__all__ = ["GUIDANCE_SCALE_EMBED_DIM", "ScheduledFloat", "TTSZipformer", "set_batch_count"]

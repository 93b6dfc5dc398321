"""The network: Zipformer, conditional flow matching, few-step students, configuration and checkpoints."""

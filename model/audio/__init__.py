"""Audio of the model: log-mel features and vocoders."""

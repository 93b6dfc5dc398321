"""Text front end of the dialogue TTS model: normalisation, G2P, token table, tokenizer."""

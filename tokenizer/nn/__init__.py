"""The fixed-rate tokenizer (Cosmos DV4x8x8 style): FSQ quantizer, causal conv layers, model."""

"""Training the tokenizer: the trainer (stage 1 fixed-rate; stage 2 the InfoTok layer on a
frozen base), the router stage (the latent router's head on a frozen adaptive model), the
built-in procedural corpus's batches (`tokenizer.data`; a pure function of seed and step), and batches computed ahead on
worker threads."""

"""A token dataset read into memory for the LM probe (`tokenizer.lm`): `read_corpus`."""

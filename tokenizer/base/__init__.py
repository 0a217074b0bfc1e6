"""Base tokenizers under the InfoTok adaptive layer: the interface (`protocol`), the record of an
external base a checkpoint names (`spec`), the checks run when such a base is loaded (`checks`),
NVIDIA's Cosmos-Tokenizer DV adapter (`cosmos`) and loading a recorded base (`load`)."""

"""The identity of an external base tokenizer, as a checkpoint records it.

A checkpoint trained on an external base (NVIDIA Cosmos-Tokenizer DV4x8x8: two TorchScript files)
stores no base weights: it records the base's kind, the SHA-256 of each file and the paths it was
trained from. The tokenizer id hashes the kind and the file hashes (not the paths), so a dataset's
tokenizer id names the exact base files that decode it, wherever they lie.

On the command line a base is written `KIND:ENCODER,DECODER`, e.g. `cosmos:encoder.jit,decoder.jit`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from schemas.config import FrozenConfig

BASE_KINDS: tuple[str, ...] = ("cosmos",)
# `KIND:ENCODER,DECODER`: where a loaded checkpoint finds its base files instead of the recorded paths
BASE_ENV = "INFOTOK_BASE"


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class BaseSpec(FrozenConfig):
    """kind: one of BASE_KINDS; encoder, decoder: the TorchScript files' paths; encoder_sha256,
    decoder_sha256: their hex SHA-256 ("" until `hashed`)."""

    kind: str = "cosmos"
    encoder: str = ""
    decoder: str = ""
    encoder_sha256: str = ""
    decoder_sha256: str = ""

    def __post_init__(self) -> None:
        if self.kind not in BASE_KINDS:
            raise ValueError(f"unknown base kind {self.kind!r}; choose from {list(BASE_KINDS)}")
        if not self.encoder or not self.decoder:
            raise ValueError(f"a {self.kind} base needs an encoder and a decoder file, got {self.encoder!r}, "
                             f"{self.decoder!r}")

    @classmethod
    def parse(cls, text: str) -> BaseSpec:
        """'KIND:ENCODER,DECODER' -> a spec without hashes."""
        kind, sep, files = text.partition(":")
        paths = [p.strip() for p in files.split(",")]
        if not sep or len(paths) != 2 or not all(paths):
            raise ValueError(f"a base is KIND:ENCODER,DECODER (e.g. cosmos:encoder.jit,decoder.jit), got {text!r}")
        return cls(kind=kind.strip(), encoder=paths[0], decoder=paths[1])

    def hashed(self) -> BaseSpec:
        """This spec with the SHA-256 of both files as they are now (paths made absolute)."""
        enc, dec = Path(self.encoder).resolve(), Path(self.decoder).resolve()
        for role, path in (("encoder", enc), ("decoder", dec)):
            if not path.is_file():
                raise ValueError(f"base {role} {path}: no such file")
        return replace(self, encoder=str(enc), decoder=str(dec), encoder_sha256=sha256_of(enc),
                       decoder_sha256=sha256_of(dec))

    def identity(self) -> dict[str, Any]:
        """What the tokenizer id hashes: the kind and the files' hashes, not where they lie."""
        return {"kind": self.kind, "encoder_sha256": self.encoder_sha256, "decoder_sha256": self.decoder_sha256}

    @property
    def name(self) -> str:
        """The checkpoint kind this base gives ('<kind>' as in '<kind>-adaptive-<hex>')."""
        return self.kind

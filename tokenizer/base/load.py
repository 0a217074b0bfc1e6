"""Loading the external base a checkpoint records: at its recorded paths, or where the
`INFOTOK_BASE` environment variable (`KIND:ENCODER,DECODER`) or the caller's override points;
a file whose SHA-256 differs from the recorded one is refused."""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from tokenizer.base.checks import BaseInterfaceError
from tokenizer.base.cosmos import CosmosBase
from tokenizer.base.spec import BASE_ENV, BaseSpec, sha256_of

logger = logging.getLogger(__name__)


def load_new_base(text: str) -> CosmosBase:
    """A base named on the command line ('cosmos:ENCODER,DECODER'), hashed and checked, for training."""
    try:
        spec = BaseSpec.parse(text).hashed()
    except ValueError as exc:
        raise BaseInterfaceError(str(exc)) from None
    return CosmosBase.load(spec)


def load_recorded_base(recorded: BaseSpec, override: str | None = None, where: str = "checkpoint") -> CosmosBase:
    """The base `recorded` names (kind, hashes, paths), from override or $INFOTOK_BASE when set
    (same kind), else the recorded paths; raise BaseInterfaceError when a file's hash differs."""
    text = override if override is not None else os.environ.get(BASE_ENV) or None
    spec = recorded
    if text is not None:
        given = BaseSpec.parse(text)
        if given.kind != recorded.kind:
            raise BaseInterfaceError(f"{where} was trained on a {recorded.kind!r} base, {text!r} is {given.kind!r}")
        spec = replace(recorded, encoder=given.encoder, decoder=given.decoder)
    for role, path, want in (("encoder", spec.encoder, spec.encoder_sha256),
                             ("decoder", spec.decoder, spec.decoder_sha256)):
        try:
            got = sha256_of(path)
        except OSError:
            raise BaseInterfaceError(f"base {role} {path} of {where} not found: give its files with "
                                     f"{BASE_ENV}={recorded.kind}:ENCODER,DECODER") from None
        if got != want:
            raise BaseInterfaceError(f"base {role} {path}: sha256 {got} differs from {want} recorded by {where}")
    logger.info("base %s from %s, %s", spec.kind, spec.encoder, spec.decoder)
    return CosmosBase.load(spec)

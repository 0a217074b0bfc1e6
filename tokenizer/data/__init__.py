"""Synthetic clips, made offline and deterministically: what training and evaluation both draw from.

`photos` (the photographs and their train / held-out split), `camera` (a camera move over a
photograph), `degrade` (blur, an x264 round trip), `procedural` (the five procedural families and
`make_clip`) and `mixed` (the camera-work kinds a real corpus mixes). Each generator takes a
numpy Generator and makes the same clip from the same draws.
"""

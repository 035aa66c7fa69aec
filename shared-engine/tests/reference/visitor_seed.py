#!/usr/bin/env python3
"""Independent reference for allocator::visitor_seed (the Thompson RNG seed).

message = le64(len(visitor)) || visitor || le64(len(unit)) || unit || le64(version)
(strings UTF-8). Read as little-endian u64 words, last zero-padded. s = 0x243f6a8885a308d3;
per word w: s = ((s ^ w) * 0x9e3779b97f4a7c15) mod 2^64; s ^= s >> 29.
Finally z = s ^ len(message) through the SplitMix64 finaliser.
Output pasted into tests/engine/allocator.rs.
"""
import struct

M = (1 << 64) - 1


def visitor_seed(visitor, unit, version):
    v, u = visitor.encode(), unit.encode()
    msg = struct.pack("<Q", len(v)) + v + struct.pack("<Q", len(u)) + u + struct.pack("<Q", version)
    s = 0x243F6A8885A308D3
    padded = msg + b"\0" * (-len(msg) % 8)
    for i in range(0, len(padded), 8):
        (w,) = struct.unpack("<Q", padded[i:i + 8])
        s = ((s ^ w) * 0x9E3779B97F4A7C15) & M
        s ^= s >> 29
    z = s ^ len(msg)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


if __name__ == "__main__":
    for args in [("visitor", "exp", 1),
                 ("0f8fad5b-d9cb-469f-a165-70867728950e", "exp-1", 42),
                 ("", "", 0),
                 ("ユーザー", "exp:hero", 7)]:
        print(f"visitor_seed{args} = {visitor_seed(*args)}")

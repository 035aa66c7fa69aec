#!/usr/bin/env python3
"""Independent reference for allocator::visitor_seed (the Thompson RNG seed).

FNV-1a 64 (offset 0xcbf29ce484222325, prime 0x100000001b3) over
  le_u64(len(visitor)) || visitor || le_u64(len(unit)) || unit || le_u64(version)
with strings as UTF-8. Output pasted into tests/engine/allocator.rs.
"""
import struct


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) % (1 << 64)
    return h


def visitor_seed(visitor, unit, version):
    v, u = visitor.encode(), unit.encode()
    data = struct.pack("<Q", len(v)) + v + struct.pack("<Q", len(u)) + u + struct.pack("<Q", version)
    return fnv1a64(data)


if __name__ == "__main__":
    print("visitor_seed('visitor', 'exp', 1) =", visitor_seed("visitor", "exp", 1))
    print("visitor_seed('0f8fad5b-d9cb-469f-a165-70867728950e', 'exp-1', 42) =",
          visitor_seed("0f8fad5b-d9cb-469f-a165-70867728950e", "exp-1", 42))

#!/usr/bin/env python3
"""Independent reference for GrowthBook's hashing, written from the definition.

FNV-1a 32 over UTF-16 code units (JS `charCodeAt`), offset basis 2166136261,
prime 16777619, mod 2^32.
  v1: fnv(value + seed) % 1000 / 1000
  v2: fnv(str(fnv(seed + value))) % 10000 / 10000
Ranges: coverage clamped to [0,1]; weights of the wrong length or whose sum is outside
[0.99, 1.01] replaced by equal weights; range i = [start_i, start_i + coverage * w_i).

Run: python3 shared-engine/tests/reference/growthbook_hash.py
Its output is pasted into shared-engine/tests/bucket_golden.rs.
"""


def utf16_units(s):
    data = s.encode("utf-16-le")
    return [data[i] | (data[i + 1] << 8) for i in range(0, len(data), 2)]


def fnv1a32(s):
    h = 2166136261
    for u in utf16_units(s):
        h ^= u
        h = (h * 16777619) % (1 << 32)
    return h


def gb_hash(seed, value, version):
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    return None


def ranges(n, coverage, weights):
    coverage = min(max(coverage, 0.0), 1.0)
    equal = [1.0 / n] * n if n > 0 else []
    if weights is None or len(weights) != n:
        weights = equal
    total = sum(weights)
    if total < 0.99 or total > 1.01:
        weights = equal
    out, cum = [], 0.0
    for w in weights:
        start = cum
        cum += w
        out.append((start, start + coverage * w))
    return out


def rust_f64(x):
    r = repr(float(x))
    return r


CASES_HASH = [
    ("", "", 1), ("", "", 2),
    ("a", "1", 1), ("a", "1", 2),
    ("seed", "user-123", 1), ("seed", "user-123", 2),
    ("my-experiment", "0f8fad5b-d9cb-469f-a165-70867728950e", 1),
    ("my-experiment", "0f8fad5b-d9cb-469f-a165-70867728950e", 2),
    ("exp:hero", "7c9e6679-7425-40de-944b-e07fc1f90ae7", 2),
    ("checkout", "visitor", 1), ("checkout", "visitor", 2),
    ("ünïcødé", "ユーザー", 1), ("ünïcødé", "ユーザー", 2),
    ("emoji😀", "😀user", 1), ("emoji😀", "😀user", 2),
]

CASES_FNV = ["", "a", "foobar", "hello world", "ユーザー", "😀"]

CASES_RANGES = [
    (2, 1.0, None), (3, 1.0, None), (2, 0.5, None), (3, 0.2, [0.2, 0.3, 0.5]),
    (2, 1.0, [0.4, 0.6]), (2, 1.0, [0.4, 0.1]), (2, 1.0, [0.5, 0.25, 0.25]),
    (4, -0.2, None), (3, 1.7, [0.1, 0.1, 0.8]),
]

CASES_NS = [
    ("user-1", ("ns1", 0.0, 0.4)), ("user-2", ("ns1", 0.4, 1.0)),
    ("0f8fad5b-d9cb-469f-a165-70867728950e", ("pricing", 0.25, 0.75)),
]

if __name__ == "__main__":
    print("// fnv1a32")
    for s in CASES_FNV:
        print(f"    ({s!r}, {fnv1a32(s)}),".replace("'", '"'))
    print("// hash")
    for seed, value, v in CASES_HASH:
        print(f'    ("{seed}", "{value}", {v}, {rust_f64(gb_hash(seed, value, v))}),')
    print("// ranges")
    for n, cov, w in CASES_RANGES:
        r = ", ".join(f"({rust_f64(a)}, {rust_f64(b)})" for a, b in ranges(n, cov, w))
        print(f"    ({n}, {cov}, {w}) => [{r}]")
    print("// namespace: hash('__' + id, visitor, 1) and membership")
    for visitor, (ns, s, e) in CASES_NS:
        n = gb_hash("__" + ns, visitor, 1)
        print(f'    ("{visitor}", ("{ns}", {s}, {e}), n={rust_f64(n)}, in={s <= n < e}),')

"""Byte mutations (deterministic: every choice comes from the rng passed in)."""

from __future__ import annotations

import random

INTERESTING_BYTES = (0x00, 0x01, 0x02, 0x03, 0x07, 0x08, 0x7F, 0x80, 0x81, 0xFE, 0xFF)
INTERESTING_16 = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF)
INTERESTING_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1800, 5400, 3600)


def mutate(rng: random.Random, data: bytes, others: list[bytes] | tuple = (),
           rounds: int | None = None) -> bytes:
    """data with 1..4 random mutations (bit flips, interesting values,
    insertions, deletions, duplications, splices with one of others)."""
    buf = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.randint(1, 4)):
        choice = rng.randrange(11)
        n = len(buf)
        if choice == 0 and n:  # flip a bit
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        elif choice == 1 and n:  # an interesting byte
            buf[rng.randrange(n)] = rng.choice(INTERESTING_BYTES)
        elif choice == 2 and n >= 2:  # an interesting 16-bit value
            i = rng.randrange(n - 1)
            buf[i:i + 2] = rng.choice(INTERESTING_16).to_bytes(2, rng.choice(("big", "little")))
        elif choice == 3 and n >= 4:  # an interesting 32-bit value
            i = rng.randrange(n - 3)
            buf[i:i + 4] = rng.choice(INTERESTING_32).to_bytes(4, "big")
        elif choice == 4:  # insert random bytes
            i = rng.randrange(n + 1)
            buf[i:i] = rng.randbytes(rng.choice((1, 1, 2, 4, 8, 16)))
        elif choice == 5 and n:  # delete a range
            i = rng.randrange(n)
            del buf[i:i + rng.choice((1, 1, 2, 4, 8, 32))]
        elif choice == 6 and n:  # duplicate a range
            i = rng.randrange(n)
            j = min(n, i + rng.choice((1, 4, 8, 32, 128)))
            k = rng.randrange(n + 1)
            buf[k:k] = buf[i:j]
        elif choice == 7 and n:  # truncate
            del buf[rng.randrange(n):]
        elif choice == 8 and others:  # splice with another input
            other = rng.choice(others)
            if other:
                i = rng.randrange(len(other))
                k = rng.randrange(n + 1)
                buf[k:] = other[i:]
        elif choice == 9 and n:  # random byte
            buf[rng.randrange(n)] = rng.randrange(256)
        elif choice == 10 and n:  # a byte +- small
            i = rng.randrange(n)
            buf[i] = (buf[i] + rng.choice((-2, -1, 1, 2))) & 0xFF
    return bytes(buf)


def random_bytes(rng: random.Random, max_len: int = 512) -> bytes:
    return rng.randbytes(rng.choice((0, 1, 2, 4, 8, 16, 64, rng.randrange(max_len + 1))))


def split(rng: random.Random, data: bytes) -> list[bytes]:
    """data cut into chunks at random places (as TCP reads may cut it)."""
    if len(data) <= 1 or rng.random() < 0.3:
        return [data]
    if len(data) <= 24 and rng.random() < 0.2:
        return [data[i:i + 1] for i in range(len(data))]
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 5))))
    pieces, last = [], 0
    for cut in cuts:
        pieces.append(data[last:cut])
        last = cut
    pieces.append(data[last:])
    return pieces

"""Wire formats, declared in construct. No I/O here: bytes in, values out."""

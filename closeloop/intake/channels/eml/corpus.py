"""A large, varied mail corpus for the import test and benchmark, built from real messages.

`build(target, count)` writes `count` files: the seed messages of `data/mail-corpus/`
as they are, then variants of them damaged the ways real mail is damaged. Deterministic
for a given seed, so a failure can be reproduced file by file.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[4] / "data" / "mail-corpus"
Mutation = Callable[[bytes, random.Random], bytes]


def seeds(root: Path = CORPUS) -> list[bytes]:
    return [p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in (".txt", ".eml")]


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(sep)
        if found:
            return head, sep, body
    return raw, b"", b""


def truncate(raw: bytes, rng: random.Random) -> bytes:
    return raw[: rng.randrange(1, max(2, len(raw)))]


def charset_damage(raw: bytes, rng: random.Random) -> bytes:
    bogus = rng.choice([b"unknown-8bit", b"DEFAULT_CHARSET", b"x-user-defined", b"utf-8", b"\"\"", b"ks_c_5601"])
    raw = re.sub(rb"(?i)charset=\"?[\w.:-]+\"?", b"charset=" + bogus, raw)
    head, sep, body = _split(raw)
    junk = bytes(rng.randrange(128, 256) for _ in range(rng.randrange(1, 40)))
    cut = rng.randrange(0, len(body) + 1)
    return head + b"\nX-Junk: " + junk[:8] + sep + body[:cut] + junk + body[cut:]


def mangle_headers(raw: bytes, rng: random.Random) -> bytes:
    head, sep, body = _split(raw)
    lines = head.splitlines()
    extra = [b"Subject: " + b"=?utf-8?B?" + b"!!notbase64" * rng.randrange(1, 5) + b"?=",
             b"From: <<<@@@>>>", b"Message-ID: <" + b"x" * rng.randrange(10, 400) + b">",
             b"Content-Type: multipart/mixed",
             b"Date: yesterday-ish", b"To: undisclosed-recipients:;", b"NoColonHeaderLine", b"\x00\x01\x02: nul",
             b"In-Reply-To: <a@b> <c@d", b"References: " + b"<r@x> " * rng.randrange(1, 200)]
    for _ in range(rng.randrange(1, 4)):
        lines.insert(rng.randrange(0, len(lines) + 1), rng.choice(extra))
    if lines and rng.random() < 0.3:
        lines.pop(rng.randrange(len(lines)))
    return b"\n".join(lines) + (sep or b"\n\n") + body


def huge_line(raw: bytes, rng: random.Random) -> bytes:
    head, sep, body = _split(raw)
    line = bytes(rng.choice(b"abcdefghij ") for _ in range(rng.randrange(200_000, 1_200_000)))
    return head + (sep or b"\n\n") + body + b"\n" + line


def nest(raw: bytes, rng: random.Random) -> bytes:
    depth = rng.choice([2, 5, 19, 25])
    _, _, body = _split(raw)
    inner = b"Content-Type: text/plain\n\n" + body[:2000]
    for level in range(depth):
        boundary = f"nest{level}".encode()
        inner = (b"Content-Type: multipart/mixed; boundary=" + boundary + b"\n\n--" + boundary + b"\n" + inner
                 + b"\n--" + boundary + b"--\n")
    return (b"From: nested@example.com\nSubject: nested " + str(depth).encode() + b"\nMIME-Version: 1.0\n"
            + inner)


def garbage(raw: bytes, rng: random.Random) -> bytes:
    return rng.choice([b"", b"\n\n\n", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))),
                       b"%PDF-1.4 not a mail at all", raw[::-1]])


MUTATIONS: list[Mutation] = [truncate, charset_damage, mangle_headers, huge_line, nest, garbage]
WEIGHTS = [30, 30, 30, 2, 10, 8]  # huge lines are rare in life and heavy on disk


def build(target: Path, count: int, seed: int = 20240601, root: Path = CORPUS) -> list[Path]:
    """Write `count` files into `target` (seeds first, then mutations); return their paths."""
    rng = random.Random(seed)
    originals = seeds(root)
    if not originals:
        raise FileNotFoundError(f"no seed messages under {root}")
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        base = originals[index % len(originals)]
        if index < len(originals):
            data, name = base, "seed"
        else:
            mutation = rng.choices(MUTATIONS, weights=WEIGHTS)[0]
            data, name = mutation(base, rng), mutation.__name__
        path = target / f"{index:06d}-{name}.eml"
        path.write_bytes(data)
        paths.append(path)
    return paths

"""Throughput of sealed weights: seal, unseal to a file, unseal into memory (memfd).

    .venv/bin/python bench/seal_throughput.py [--size-gib 2] [--chunk-mib 8] [--dir DIR]

Writes a ~2 GiB file of random-looking bytes in DIR (default: a temporary directory on
the same filesystem as /tmp), then times:

* seal           file -> sealed file (read, AES-256-GCM encrypt, write, fsync, rename)
* unseal (file)  sealed file -> plaintext file (read, decrypt+verify, write, fsync, rename)
* unseal (shm)   sealed file -> file on /dev/shm (tmpfs: no disk write), when it has room
* unseal (memfd) sealed file -> anonymous memory (read, decrypt+verify, write to a memfd)
* AEAD only      decrypt_into on one in-memory chunk, repeated (the cipher's own ceiling)

The input is read back from the page cache right after it was written, so the figures are
CPU- and memory-bound (AES-NI; page allocation), except the fsync of the file outputs,
which waits for the disk. Target: unseal >= 1 GB/s. GB = 1e9 bytes.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from airlock.deploy.sealed import generate_kek_file, open_sealed_to_memfd, seal, unseal


def _write_input(path: Path, size: int) -> None:
    block = secrets.token_bytes(16 * 1024 * 1024)  # repeated: AES does not care
    with path.open("wb") as fh:
        left = size
        while left:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n


def _rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / 1e9:6.2f} GB/s ({seconds:6.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    size = int(args.size_gib * 1024**3)
    chunk = args.chunk_mib * 1024 * 1024

    work = Path(tempfile.mkdtemp(prefix="airlock-seal-bench-", dir=args.dir))
    try:
        kek = generate_kek_file(work / "kek")
        src, sealed, out = work / "in.bin", work / "in.sealed", work / "out.bin"
        _write_input(src, size)
        print(f"input {size / 1e9:.2f} GB, chunk {args.chunk_mib} MiB, {os.cpu_count()} CPUs")

        t = time.perf_counter()
        seal(src, sealed, kek, chunk_size=chunk)
        print(f"seal           {_rate(size, time.perf_counter() - t)}")
        src.unlink()  # free the page cache / disk for the next steps

        t = time.perf_counter()
        unseal(sealed, out, kek)
        print(f"unseal (file)  {_rate(size, time.perf_counter() - t)}")
        out.unlink()

        shm = Path("/dev/shm")
        if shm.is_dir() and shutil.disk_usage(shm).free > 2 * size:
            # A memory-backed file system: the launcher's path for vLLM (no disk write).
            t = time.perf_counter()
            unseal(sealed, shm / f"airlock-bench-{os.getpid()}", kek)
            elapsed = time.perf_counter() - t
            (shm / f"airlock-bench-{os.getpid()}").unlink()
            print(f"unseal (shm)   {_rate(size, elapsed)}")

        t = time.perf_counter()
        fd = open_sealed_to_memfd(sealed, kek)
        elapsed = time.perf_counter() - t
        os.close(fd)
        print(f"unseal (memfd) {_rate(size, elapsed)}")

        aead = AESGCM(AESGCM.generate_key(256))
        nonce = secrets.token_bytes(12)
        ct = aead.encrypt(nonce, secrets.token_bytes(chunk), b"aad")
        buf = bytearray(chunk)
        reps = max(1, size // chunk // 4)
        t = time.perf_counter()
        for _ in range(reps):
            aead.decrypt_into(nonce, ct, b"aad", buf)
        print(f"AEAD only      {_rate(reps * chunk, time.perf_counter() - t)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

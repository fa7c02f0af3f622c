#!/usr/bin/env python3
"""forge.py - what someone who kept an old data key of a workspace (and the
tenant key that unwrapped it, or the wrap and the key) can make: an object
sealed under that key, for the tests that show cairn refuses it once the key
is retired.  Written from docs/format.md alone, with libsodium through ctypes.

  forge.py seal KEK-FILE WRAP-FILE KIND NAME WORKSPACE < PLAINTEXT > OBJECT

KEK-FILE is a tenant key file (cairn-kek-v1:...), WRAP-FILE a wrapped data
key object (keys/<key-id>.<kek-id>) it unwraps; KIND is head, lease,
snapshot or index; NAME the object's name in the workspace (head,
snapshots/<id>, ...).
"""
import base64
import ctypes
import ctypes.util
import sys

KINDS = {"pack": 1, "index": 2, "snapshot": 3, "head": 4, "lease": 5}

so = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
if so.sodium_init() < 0:
    sys.exit("forge.py: libsodium does not start")


def kdf(master, context, length=32):
    out = ctypes.create_string_buffer(length)
    if so.crypto_kdf_derive_from_key(out, ctypes.c_size_t(length), ctypes.c_uint64(1),
                                     context.encode(), master) != 0:
        sys.exit("forge.py: kdf failed")
    return out.raw


def aead_decrypt(key, nonce, ad, ct):
    out = ctypes.create_string_buffer(len(ct))
    n = ctypes.c_ulonglong(0)
    if so.crypto_aead_xchacha20poly1305_ietf_decrypt(out, ctypes.byref(n), None, ct,
                                                      ctypes.c_ulonglong(len(ct)), ad,
                                                      ctypes.c_ulonglong(len(ad)), nonce, key) != 0:
        sys.exit("forge.py: the wrap does not open with that tenant key")
    return out.raw[:n.value]


def aead_encrypt(key, nonce, ad, plain):
    out = ctypes.create_string_buffer(len(plain) + 16)
    n = ctypes.c_ulonglong(0)
    so.crypto_aead_xchacha20poly1305_ietf_encrypt(out, ctypes.byref(n), plain,
                                                  ctypes.c_ulonglong(len(plain)), ad,
                                                  ctypes.c_ulonglong(len(ad)), None, nonce, key)
    return out.raw[:n.value]


def random_bytes(n):
    out = ctypes.create_string_buffer(n)
    so.randombytes_buf(out, ctypes.c_size_t(n))
    return out.raw


def unwrap(kek_file, wrap_file):
    """(key id bytes, 32-byte data key) of a wrapped key object."""
    kek = base64.b64decode(open(kek_file).read().strip().split(":")[2])
    obj = open(wrap_file, "rb").read()
    hlen = 52 + obj[11]
    key = aead_decrypt(kdf(kek, "cairnwrp"), obj[hlen:hlen + 24], obj[:hlen], obj[hlen + 24:])
    return obj[12:20], key


def seal(key_id, key, kind, name, ws, plain):
    header = b"cairnobj" + bytes([1, KINDS[kind], 1, 0]) + key_id
    ad = header + len(name).to_bytes(2, "little") + name.encode() + bytes([len(ws)]) + ws.encode()
    nonce = random_bytes(24)
    return header + nonce + aead_encrypt(kdf(key, "cairnsea"), nonce, ad, plain)


def main():
    if len(sys.argv) != 7 or sys.argv[1] != "seal":
        sys.exit(__doc__)
    key_id, key = unwrap(sys.argv[2], sys.argv[3])
    sys.stdout.buffer.write(seal(key_id, key, sys.argv[4], sys.argv[5], sys.argv[6],
                                 sys.stdin.buffer.read()))


main()

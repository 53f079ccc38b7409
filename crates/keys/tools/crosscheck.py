#!/usr/bin/env python3
"""Independent re-derivation of the pinned vectors in tests/vectors.rs with
pyca/cryptography (OpenSSL), from the format description in src/envelope.rs
and src/hierarchy.rs. Run: python3 crates/keys/tools/crosscheck.py"""
import re, struct, pathlib
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization

vectors = dict(re.findall(r'const (\w+): &str = "([0-9a-f]+)";',
    (pathlib.Path(__file__).parent.parent / "tests/vectors.rs").read_text()))

def hkdf(salt, ikm, info, n):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)

def public(secret):
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)

master, cluster, agent, eph = b"\x11" * 32, b"\x22" * 32, b"\x33" * 32, b"\x44" * 32
def derive(ikm, label, ident, epoch):
    return hkdf(b"phalanx/keys/v1", ikm, label + ident + struct.pack("<Q", epoch), 32)
cluster7 = derive(master, b"phalanx/cluster-key/v1", cluster, 7)
agent7 = derive(cluster7, b"phalanx/agent-key/v1", agent, 7)
agent8 = derive(derive(master, b"phalanx/cluster-key/v1", cluster, 8), b"phalanx/agent-key/v1", agent, 8)
assert cluster7.hex() == vectors["CLUSTER_SECRET_E7"]
assert public(cluster7).hex() == vectors["CLUSTER_PUBLIC_E7"]
assert agent7.hex() == vectors["AGENT_SECRET_E7"]
assert public(agent7).hex() == vectors["AGENT_PUBLIC_E7"]
assert public(agent8).hex() == vectors["AGENT_PUBLIC_E8"]
# The owner's log key from an account seed (here the master bytes).
assert public(derive(master, b"phalanx/log-key/v1", b"\x00" * 32, 0)).hex() == vectors["LOG_PUBLIC"]

# header: version, purpose (Call=0), direction (Request=0), key ref (Agent=1, id, epoch), agent, ephemeral, sequence
def header(direction, sequence):
    return (bytes([1, 0, direction, 1]) + agent + struct.pack("<Q", 7) + agent + public(eph)
            + struct.pack("<Q", sequence))
recipient = public(agent7)
shared = X25519PrivateKey.from_private_bytes(eph).exchange(X25519PublicKey.from_public_bytes(recipient))
salt = public(eph) + recipient
request_header = header(0, 0)
okm = hkdf(salt, shared, b"phalanx/envelope/v1" + request_header, 44)
ciphertext = ChaCha20Poly1305(okm[:32]).encrypt(okm[32:], b'{"prompt":"hello"}', request_header)
assert (request_header + ciphertext).hex() == vectors["REQUEST_ENVELOPE"]

exporter = hkdf(salt, shared, b"phalanx/envelope/v1/response" + request_header, 32)
response_header = header(1, 0)
# HKDF-Expand only (the exporter is the PRK): one block of SHA-256 HMAC expansion.
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
okm = HKDFExpand(algorithm=hashes.SHA256(), length=44,
                 info=b"phalanx/envelope/v1/response-message" + response_header).derive(exporter)
ciphertext = ChaCha20Poly1305(okm[:32]).encrypt(okm[32:], b'{"answer":"hi"}', response_header)
assert (response_header + ciphertext).hex() == vectors["RESPONSE_0"]
print("all vectors re-derived independently")

"""Plays the CI job and Flux's verifier with implementations independent of the provider's:
PyNaCl's secretbox and the standard library's scrypt open the encrypted cosign key with its
password, `cryptography` signs with it, and every public key PEM given is tried on the
signature, the way Flux tries each `*.pub` key of its verification Secret.

Reads JSON on stdin: {"private_key_b64", "password", "public_keys": {name: pem}}.
Prints JSON: {"verified_by": [names of the public keys that verify]}.
"""

import base64
import hashlib
import json
import sys

import nacl.secret
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

LABELS = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")


def open_envelope(pem: str, password: str) -> bytes:
    lines = pem.strip().splitlines()
    label = lines[0].removeprefix("-----BEGIN ").removesuffix("-----")
    if label not in LABELS:
        raise SystemExit(f"unexpected PEM label {label!r}")
    envelope = json.loads(base64.b64decode("".join(lines[1:-1])))
    kdf, cipher = envelope["kdf"], envelope["cipher"]
    assert kdf["name"] == "scrypt" and cipher["name"] == "nacl/secretbox", envelope.keys()
    params = kdf["params"]
    key = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(kdf["salt"]),
        n=params["N"],
        r=params["r"],
        p=params["p"],
        maxmem=256 * 1024 * 1024,
        dklen=32,
    )
    box = nacl.secret.SecretBox(key)
    return box.decrypt(base64.b64decode(envelope["ciphertext"]), base64.b64decode(cipher["nonce"]))


def main() -> None:
    request = json.load(sys.stdin)
    pem = base64.b64decode(request["private_key_b64"]).decode()
    der = open_envelope(pem, request["password"])
    private = serialization.load_der_private_key(der, password=None)
    assert isinstance(private.curve, ec.SECP256R1), private.curve
    artifact = b"sha256:an OCI artifact digest to sign"
    signature = private.sign(artifact, ec.ECDSA(hashes.SHA256()))
    verified = []
    for name, public_pem in request["public_keys"].items():
        public = serialization.load_pem_public_key(public_pem.encode())
        try:
            public.verify(signature, artifact, ec.ECDSA(hashes.SHA256()))
            verified.append(name)
        except InvalidSignature:
            pass
    json.dump({"verified_by": verified}, sys.stdout)


if __name__ == "__main__":
    main()

"""Private signing keys for SMART Backend Services, and the public JWKS clinic IT registers.

The EHR trusts us by the public half of a key pair: clinic IT registers our JWKS once, and every
token request carries a JWT signed with the private half. Only RSA >= 2048 bits (RS384) and EC
P-384 (ES384) are accepted, the two algorithms SMART App Launch 2 requires servers to support.
The key id is the RFC 7638 thumbprint, so it is stable and derivable from the public key alone.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_bridge.fhir.errors import SigningKeyError

with warnings.catch_warnings():
    # authlib.jose announces its future move to joserfc; the API we use is stable until 2.0.
    # authlib.deprecate installs an "always" filter on import, so silence after importing it.
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.jose import JsonWebKey, jwt

SUPPORTED_ALGORITHMS = ("RS384", "ES384")
MIN_RSA_BITS = 2048
_PUBLIC_MEMBERS = {"RSA": ("kty", "n", "e"), "EC": ("kty", "crv", "x", "y")}


@dataclass(frozen=True)
class SigningKey:
    """A loaded private key with the algorithm and key id it signs assertions under."""

    alg: str
    kid: str
    _jwk: Any = field(repr=False)

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK (no private parameters) as published in our JWKS."""
        full = self._jwk.as_dict(is_private=False)
        public = {name: full[name] for name in _PUBLIC_MEMBERS[full["kty"]]}
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig", "key_ops": ["verify"]}

    def sign_jwt(
        self, claims: Mapping[str, Any], extra_header: Mapping[str, str] | None = None
    ) -> str:
        """Compact JWS over `claims` with header alg, kid and typ=JWT (plus `extra_header`)."""
        header = {**(extra_header or {}), "alg": self.alg, "kid": self.kid, "typ": "JWT"}
        token: bytes = jwt.encode(header, dict(claims), self._jwk)
        return token.decode("ascii")


def load_signing_key(pem: str | bytes, *, password: bytes | None = None) -> SigningKey:
    """Load an RSA (>= 2048 bit) or EC P-384 private key from PEM text."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        private_key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError("private key is not a readable PEM private key") from exc
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < MIN_RSA_BITS:
            raise SigningKeyError(f"RSA key has {private_key.key_size} bits; need {MIN_RSA_BITS}+")
        alg, kty = "RS384", "RSA"
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        if not isinstance(private_key.curve, ec.SECP384R1):
            raise SigningKeyError(f"EC key is on {private_key.curve.name}; ES384 needs P-384")
        alg, kty = "ES384", "EC"
    else:
        raise SigningKeyError("only RSA and EC P-384 private keys are supported")
    unencrypted = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    jwk = JsonWebKey.import_key(unencrypted, {"kty": kty})
    return SigningKey(alg=alg, kid=jwk_thumbprint(jwk.as_dict(is_private=False)), _jwk=jwk)


def load_signing_key_file(path: str | Path, *, password: bytes | None = None) -> SigningKey:
    """Load a private key from a PEM file (see `load_signing_key`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SigningKeyError(f"private key file {path} cannot be read ({reason})") from exc
    try:
        return load_signing_key(data, password=password)
    except SigningKeyError as exc:
        raise SigningKeyError(f"{path}: {exc}") from exc


def write_private_key(path: str | Path, pem: str) -> Path:
    """Write a new private key file readable by its owner only, never overwriting one.

    A missing folder is created 0700. The file is created 0600 by ``os.open`` itself, so
    there is no moment at which other users could read it.
    """
    target = Path(path)
    folder = target.parent
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
        folder.chmod(0o700)  # mkdir's mode is filtered by the umask
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningKeyError(
            f"{target} already exists; not overwriting a key (choose another --out)"
        ) from None
    except OSError as exc:
        raise SigningKeyError(f"cannot create {target} ({exc.strerror})") from exc
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(pem)
    return target


def jwk_thumbprint(public_jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a JWK, base64url without padding."""
    kty = public_jwk.get("kty")
    if kty not in _PUBLIC_MEMBERS:
        raise SigningKeyError(f"cannot thumbprint a JWK of kty {kty!r}")
    required = {name: public_jwk[name] for name in _PUBLIC_MEMBERS[kty]}
    thumbprint: str = JsonWebKey.import_key(required).thumbprint()
    return thumbprint


def public_jwks(*keys: SigningKey) -> dict[str, Any]:
    """JWKS document to register with the EHR; list old and new keys together when rotating."""
    return {"keys": [key.public_jwk() for key in keys]}


def generate_private_key(alg: str = "ES384", *, rsa_bits: int = 3072) -> str:
    """New unencrypted PKCS#8 PEM private key for `alg` (RS384 or ES384)."""
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if alg == "ES384":
        private_key = ec.generate_private_key(ec.SECP384R1())
    elif alg == "RS384":
        if rsa_bits < MIN_RSA_BITS:
            raise SigningKeyError(f"RSA keys need at least {MIN_RSA_BITS} bits")
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    else:
        raise SigningKeyError(f"unsupported algorithm {alg!r}; use one of {SUPPORTED_ALGORITHMS}")
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")

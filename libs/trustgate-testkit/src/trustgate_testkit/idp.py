"""A local identity provider for tests: an OIDC discovery document, a JWKS and an RFC 7662
introspection endpoint over HTTP on 127.0.0.1, signing keys made with ``cryptography`` and
tokens minted with pyjwt. Keys rotate on demand; the server can be taken down and brought
back on the same port; every request is counted by path, so a test can see how often the
gateway asked."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks"
INTROSPECTION_PATH = "/introspect"


class SigningKey:
    """A private key, its ``kid`` and its public JWK."""

    def __init__(self, alg: str = "RS256", kid: str | None = None) -> None:
        self.alg = alg
        self.kid = kid or uuid.uuid4().hex[:12]
        self.private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if alg.startswith("ES"):
            self.private = ec.generate_private_key(ec.SECP256R1())
            jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        self.jwk: dict[str, Any] = {**jwk, "kid": self.kid, "use": "sig", "alg": alg}

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class LocalIdp:
    """An IdP at ``issuer`` (``http://127.0.0.1:<port>``). ``mint`` signs with the current
    key; ``rotate`` makes a new current key (the old one stays published unless
    ``keep_old`` is false); ``stop``/``start`` take the server down and back."""

    def __init__(self, client_id: str = "gateway", client_secret: str = "s3cret") -> None:
        self.keys: list[SigningKey] = [SigningKey()]
        self.client = (client_id, client_secret)
        self.opaque: dict[str, dict[str, Any]] = {}  # introspection answers by token
        self.hits: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self._port = 0
        self.start()

    # -- server ---------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def jwks_url(self) -> str:
        return self.issuer + JWKS_PATH

    @property
    def introspection_url(self) -> str:
        return self.issuer + INTROSPECTION_PATH

    def start(self) -> None:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, status: int, doc: Any) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                idp.hits[self.path] += 1
                if self.path == DISCOVERY_PATH:
                    self._json(200, idp.discovery())
                elif self.path == JWKS_PATH:
                    self._json(200, {"keys": [k.jwk for k in idp.keys]})
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                idp.hits[self.path] += 1
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if self.path != INTROSPECTION_PATH:
                    self._json(404, {"error": "not_found"})
                    return
                pair = ":".join(idp.client).encode()
                if self.headers.get("Authorization") != "Basic " + base64.b64encode(pair).decode():
                    self._json(401, {"error": "invalid_client"})
                    return
                token = (form.get("token") or [""])[0]
                self._json(200, idp.opaque.get(token, {"active": False}))

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @contextmanager
    def down(self) -> Iterator[None]:
        """The IdP unreachable (connection refused) within the block."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "introspection_endpoint": self.introspection_url,
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }

    # -- keys and tokens ------------------------------------------------------------
    @property
    def key(self) -> SigningKey:
        return self.keys[-1]

    def rotate(self, *, keep_old: bool = True) -> SigningKey:
        new = SigningKey(self.key.alg)
        self.keys = [*self.keys, new] if keep_old else [new]
        return new

    def claims(self, *, ttl: float = 300, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "user-1",
            "aud": "trustgate",
            "iat": now,
            "exp": now + int(ttl),
        }
        base.update(extra)
        return {k: v for k, v in base.items() if v is not None}

    def mint(
        self,
        *,
        key: SigningKey | None = None,
        headers: dict[str, Any] | None = None,
        ttl: float = 300,
        **claims: Any,
    ) -> str:
        """A token signed with ``key`` (default the current one); a claim given as None
        is left out."""
        signer = key or self.key
        return jwt.encode(
            self.claims(ttl=ttl, **claims),
            signer.private,
            algorithm=signer.alg,
            headers={"kid": signer.kid, **(headers or {})},
        )

    def issue_opaque(self, *, active: bool = True, ttl: float = 300, **claims: Any) -> str:
        """An opaque token the introspection endpoint knows."""
        token = uuid.uuid4().hex + uuid.uuid4().hex
        answer: dict[str, Any] = {"active": active}
        if active:
            answer.update(self.claims(ttl=ttl, **claims))
        self.opaque[token] = answer
        return token

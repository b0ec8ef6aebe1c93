"""A JWT consumer for the benchmark (issue 13's budget: a JWT consumer costs at most
40 µs of CPU per request more than an API-key consumer): a fixed RSA key (a throwaway,
made for this file: it signs nothing but benchmark tokens) and the token it signs, the
same on every run (RS256 signatures are deterministic), so the harness can send it.
"""

from __future__ import annotations

from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization

ISSUER: Final = "https://idp.bench.invalid"
AUDIENCE: Final = "trustgate"
PRIVATE_KEY_PEM: Final = """-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDHrWDzPgzxHFtX
xLRvQ3fkdZGpsNF4jKIfAlaSMseUQ5qCq43N3QJokcx0rn9leSxrPBj4RL52FKLv
pXqJTCic3RwZT6hRbxewU+JB4EUVzaiGkBKS2L1bi/bHvKq5hkDrxrI6jNT8dhGU
NXXhm3LrpO67UGbcdS6XJnWTMztA1gbqkJ9igYVZiyMBBGcbJz1aTmz3mhzbUkkg
khCzl/J32OcTufQJ5ZBE9EmPTuOP0eyLpq57boxhuuXDRiZK8CTa1RXEWDRPszlE
XL+gAZV/nokTuQgAOkqDrl6WrDauSJUy5fYjc+HC8o3ckt7Bk9iX3gYfmcExjsFv
aKGQRtefAgMBAAECggEAU+JWdFmA/lm3VevhEUz6tRNfGjaaCVarVPOagtiqV3L/
Gh4P+If8VwnJJsuX4X1CV9prcwEOMnUA7kRKcht4hE2vXELGp09QWFclGh+pZjt7
rOwhoWdERY1LIyXzYvUvmN1kSoyXfWfsgqLi3uB7KtujHzXrwHnKFN2nTyuanOWO
8S3Qo5aCSNeNZCvSLsNySF65NyyjOqvVi5u61eRgirbF3ESQLd2e5IfDOvvgY+MT
Vf04tvFC0sp1L8hqKc1INlf2P/9+10jQ1akIlUH+YRu79tbmzkWZiIFlCtIh/r2C
ErjPfFvUL4kPZkSAXu/J8ZiTdybcvQvqcZiZ8CnxoQKBgQDqu5LJpEE2QzQdGgdx
yp/CZhr/OALCoHl05c5BcZa693Qbp7YIMBkal9DnqV9sLKVTUnQ1AV5yekVtitxr
tfrjdUeBVDhFbbiUboixXb+PLhsGOlkYb6q8LTR+YX0S8KZClkuuF8dPk/J734H4
YxqLpz8+nVBmkc2s3GstEBkUuwKBgQDZxLlO8UA3lldpUm17jrz0R4qOrw9tNGvZ
7N7mkBSSX2jq7vMbGcEIysspov8E1bvfnrqmhB+0s4aBFrOAdzVulvslKBpKY5mk
qdlHcMMzG3PXxjGT8nyD1Gv9B8dwDYeJPwkFm54ikrQOuMfKer00+YXsqtexZXdx
W1urY/zMbQKBgGHUf18O2Cb3Z1bhrEyeuGrbB1FrVKstGrG/vXDFGJ8f1wJXqaRL
94p/z49dpel9ygGqEcito2Fu2FTJVQiHNeNq07xxD2rQSeeDEfFqMxZHjvfPhaaL
k8sNxB0QIIKuTXzfCvep7WWbMaqzAoY1N7EQqWk9Q28cQW5UB08msG1VAoGBAIB0
PGLGh/zCH/mud4pEnkzxzldwCAeAvoWj5a/XGWtmADtki95WiLko9kIvNYKimNnF
hZAnq5QpuZN30pZauxfq02YNi8SJj93Dmrk7WMlSzjhfXmtIxA33RWPSLOB5+pMI
rcezDcqTAscUVDWpxOX0sfzyoZywn44sN5yXtEzZAoGAbk1oguD9Xhd6vBwoS6rB
KtMTLXvnWY0G7/dhLgqBAtk4DJnobRlBqxL6IrpM4BnuLOtmvRTDwfAggeOWVJZF
DBgzUFdbV+FfBLBdj7t+wQhx/O1wVqEKrEWl/r0Wu58R+Sq/QNMVTDBBrMlJClbL
xmzRW8w2k+PciNtvMk1OvVs=
-----END PRIVATE KEY-----
"""


def public_key_pem() -> str:
    key: Any = serialization.load_pem_private_key(PRIVATE_KEY_PEM.encode(), None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def token() -> str:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "bench-user",
        "iat": 1_767_225_600,  # 2026-01-01
        "exp": 4_102_444_800,  # 2100-01-01
    }
    return jwt.encode(claims, PRIVATE_KEY_PEM, algorithm="RS256", headers={"kid": "bench"})

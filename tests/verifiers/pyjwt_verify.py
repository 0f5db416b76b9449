"""Verifies vhod tokens with PyJWT's PyJWKClient, in a virtualenv of its own, as a downstream
service would: the keys are found from the issuer's discovery document, nothing else.

Usage: python pyjwt_verify.py ISSUER AUDIENCE CACHE_SECONDS (AUDIENCE "": not checked)
Reads one token per line on stdin; writes one JSON line per token on stdout.
"""

import json
import sys
import urllib.request

import jwt

issuer, audience, lifespan = sys.argv[1], sys.argv[2], float(sys.argv[3])
with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration") as response:
    discovery = json.load(response)
client = jwt.PyJWKClient(discovery["jwks_uri"], lifespan=lifespan)
algorithms = discovery["id_token_signing_alg_values_supported"]

for line in sys.stdin:
    token = line.strip()
    try:
        key = client.get_signing_key_from_jwt(token)
        jwt.decode(token, key, algorithms=algorithms, audience=audience or None, issuer=issuer)
        result = {"ok": True, "kid": key.key_id}
    except jwt.PyJWTError as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)

// Verifies vhod tokens with Node's jose, from the JWKS alone, as a downstream service would.
// Usage: node jose_verify.mjs JWKS_URL ISSUER AUDIENCE CACHE_MAX_AGE_MS (AUDIENCE "": not checked)
// Reads one token per line on stdin; writes one JSON line per token on stdout.
import { createInterface } from "node:readline";
import { createRemoteJWKSet, jwtVerify } from "jose";

const [jwksUrl, issuer, audience, cacheMaxAge] = process.argv.slice(2);
// The cache follows the JWKS's Cache-Control max-age; jose's other defaults are kept.
const JWKS = createRemoteJWKSet(new URL(jwksUrl), { cacheMaxAge: Number(cacheMaxAge) });

const lines = createInterface({ input: process.stdin });
for await (const token of lines) {
  try {
    const checks = audience ? { issuer, audience } : { issuer };
    const { protectedHeader } = await jwtVerify(token, JWKS, checks);
    console.log(JSON.stringify({ ok: true, kid: protectedHeader.kid }));
  } catch (error) {
    console.log(JSON.stringify({ ok: false, error: `${error.code}: ${error.message}` }));
  }
}

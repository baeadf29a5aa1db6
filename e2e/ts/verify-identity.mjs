// Verifies an MCP Gateway identity assertion (x-mcp-identity) with jose, the
// way an agent written in TypeScript or JavaScript would. The part between
// the markers is the README's example, word for word (the e2e test checks).
//
//   MCP_IDENTITY=<assertion> node ts/verify-identity.mjs --gateway URL --agent ID [--jwks URL]
//
// Prints the verified claims as one JSON line, or exits 1 with the reason.
import { parseArgs } from 'node:util';

// --- README example start
import { createRemoteJWKSet, jwtVerify } from 'jose';

// gateway: the gateway's public_url; agent: this agent's id.
export function identityVerifier(gateway, agent, jwksUrl = `${gateway}/.well-known/jwks.json`) {
  const keys = createRemoteJWKSet(new URL(jwksUrl)); // cached; refetched on an unknown kid
  return async function verifyIdentity(assertion) {
    const { payload } = await jwtVerify(assertion ?? '', keys, {
      issuer: gateway,
      audience: `${gateway}/${agent}/mcp`,
      algorithms: ['ES256'],
      typ: 'mcp-identity+jwt',
      requiredClaims: ['iat', 'exp', 'credential'],
    });
    return payload; // { sub, client_id, scope, credential, iat, exp, jti, … }
  };
}
// In a request handler:
//   const id = await verifyIdentity(req.headers['x-mcp-identity']); // throws if invalid
// --- README example end

const { values } = parseArgs({ options: { gateway: { type: 'string' }, agent: { type: 'string' }, jwks: { type: 'string' } } });
try {
  const verify = identityVerifier(values.gateway, values.agent, values.jwks);
  console.log(JSON.stringify(await verify(process.env.MCP_IDENTITY)));
} catch (err) {
  console.error(`refused: ${err.code ?? ''} ${err.message}`);
  process.exit(1);
}

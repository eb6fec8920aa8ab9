// An identity provider on loopback for tests: oauth2-mock-server (real JWKS, authorization code with PKCE,
// refresh tokens), set up the way an operator sets up Auth0, Okta, Keycloak or Entra for an MCP server:
//   - access tokens are for the resource the client names (RFC 8707 `resource`, as `aud`), with the scopes
//     granted at /authorize (the mock alone mints `aud`-less tokens scoped "dummy"), for the user the
//     authorization request's login_hint names (default johndoe, the mock's one user);
//   - dynamic client registration (RFC 7591) of public clients at /register, advertised in the discovery
//     document (many providers offer it; the others take a pre-registered client id).
// Run from an npm prefix holding oauth2-mock-server: `node oauth_idp.mjs`; prints one JSON line,
// {"issuer": "http://127.0.0.1:<port>"}, then serves until killed.
import { randomUUID } from "node:crypto";
import { Events, OAuth2Server } from "oauth2-mock-server";

const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");
const grants = new Map(); // authorization code or refresh token -> { scope, resource }

function sendJson(res, status, body) {
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" });
  res.end(JSON.stringify(body));
}

server.service.on(Events.BeforeWellKnownOpenIdConfiguration, (response) => {
  response.body.registration_endpoint = `${server.issuer.url}/register`;
  response.body.grant_types_supported = [...response.body.grant_types_supported, "refresh_token"];
});

server.service.on(Events.BeforeAuthorizeRedirect, (redirect, req) => {
  const query = new URL(req.url, "http://localhost").searchParams;
  const code = redirect.url.searchParams.get("code");
  // The user who logs in: the OIDC login_hint when the client gives one (tests log in as anyone), else johndoe.
  const user = query.get("login_hint") ?? "johndoe";
  if (code) grants.set(code, { scope: query.get("scope") ?? "", resource: query.get("resource"), user });
});

server.service.on(Events.BeforeTokenSigning, (token, req) => {
  const body = req.body ?? {};
  const grant = grants.get(body.code ?? body.refresh_token);
  if (token.payload.aud !== undefined || grant === undefined) return; // an id token, or not a grant of ours
  token.payload.scope = grant.scope;
  token.payload.sub = grant.user;
  const resource = body.resource ?? grant.resource;
  if (resource) token.payload.aud = resource;
});

server.service.on(Events.BeforeResponse, (response, req) => {
  const body = req.body ?? {};
  const grant = grants.get(body.code ?? body.refresh_token);
  if (grant === undefined || response.statusCode !== 200) return;
  grants.delete(body.code ?? body.refresh_token); // a code and a refresh token serve once
  response.body.scope = grant.scope;
  if (response.body.refresh_token) grants.set(response.body.refresh_token, grant);
});

server.service.addRoute("POST", "/register", (req, res) => {
  const metadata = req.body ?? {};
  if (!Array.isArray(metadata.redirect_uris) || metadata.redirect_uris.length === 0) {
    sendJson(res, 400, { error: "invalid_redirect_uri", error_description: "redirect_uris is required" });
    return;
  }
  sendJson(res, 201, {
    ...metadata,
    client_id: randomUUID(),
    client_id_issued_at: Math.floor(Date.now() / 1000),
    token_endpoint_auth_method: "none",
  });
});

await server.start(0, "127.0.0.1");
server.issuer.url = `http://127.0.0.1:${server.address().port}`;
process.stdout.write(`${JSON.stringify({ issuer: server.issuer.url })}\n`);

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.stop().finally(() => process.exit(0)));
}

// panva's oidc-provider (a certified OpenID Provider) on 127.0.0.1 for the test suite.
// Usage: node provider.mjs <port> <clients.json>. Prints "ready" once it listens.
// devInteractions gives plain-HTML login and consent forms, which the tests post to.
import { readFileSync } from "node:fs";
import Provider from "oidc-provider";

const port = Number(process.argv[2]);
const clients = JSON.parse(readFileSync(process.argv[3], "utf8"));
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients,
  features: {
    devInteractions: { enabled: true },
    introspection: { enabled: true },
  },
  pkce: { required: () => true },
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["given_name", "family_name"],
  },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: `${sub}@example.org`,
          email_verified: true,
          given_name: "Ivan",
          family_name: "Petrov",
        };
      },
    };
  },
  // The development keys oidc-provider generates are enough on 127.0.0.1; the cookie keys
  // are fixed only to silence its warning.
  cookies: { keys: ["vhod-test-cookie-key"] },
});
provider.proxy = false;

const server = provider.listen(port, "127.0.0.1", () => {
  process.stdout.write("ready\n");
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));

// panva's oidc-provider (a certified OpenID Provider) on 127.0.0.1 for the test suite.
// Usage: node provider.mjs <port> <clients.json> [telegram]. Prints "ready" once it listens.
// "telegram": configured as Telegram Login is (core.telegram.org/bots/telegram-login): the
// scopes openid, profile and phone, the user's claims in the RS256 id_token, PKCE required.
// devInteractions gives plain-HTML login and consent forms, which the tests post to.
import { readFileSync } from "node:fs";
import Provider from "oidc-provider";

const port = Number(process.argv[2]);
const clients = JSON.parse(readFileSync(process.argv[3], "utf8"));
const issuer = `http://127.0.0.1:${port}`;
const telegram = process.argv[4] === "telegram";

const standard = {
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["given_name", "family_name"],
  },
  account: (sub) => ({
    sub,
    email: `${sub}@example.org`,
    email_verified: true,
    given_name: "Ivan",
    family_name: "Petrov",
  }),
};
const asTelegram = {
  claims: {
    openid: ["sub"],
    profile: ["name", "preferred_username", "picture"],
    phone: ["phone_number"],
  },
  // Telegram's phone_number has no "+"; its docs' example number is not a valid one.
  account: (sub) => ({
    sub,
    name: "Ivan Petrov",
    preferred_username: sub,
    picture: `https://t.me/i/userpic/320/${sub}.jpg`,
    phone_number: "971501234567",
  }),
};
const profile = telegram ? asTelegram : standard;

const provider = new Provider(issuer, {
  clients,
  features: {
    devInteractions: { enabled: true },
    introspection: { enabled: !telegram },
  },
  pkce: { required: () => true },
  claims: profile.claims,
  // Telegram has no user info: its id_token carries the claims of the scopes granted.
  conformIdTokenClaims: !telegram,
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return profile.account(sub);
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

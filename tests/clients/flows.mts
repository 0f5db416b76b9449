// The flows an integrator's front end runs, through the TypeScript types openapi-typescript
// generates from /openapi.json and the openapi-fetch client. tests/test_clients.py compiles
// this file with `tsc --strict` (a call or an error code the types do not allow fails the
// compilation) and runs it against a live vhod; `target.mts` is written by the test.
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";
import { baseUrl, email, phone } from "./target.mjs";

const requests: string[] = [];
const client = createClient<paths>({
  baseUrl,
  fetch: async (request: Request) => {
    const bearer = request.headers.get("Authorization") ? " bearer" : "";
    requests.push(
      `${request.method} ${request.url} ${request.headers.get("Content-Type")}${bearer}`,
    );
    return fetch(request);
  },
});

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`failed: ${what}`);
}

const password = "correct horse battery";
const registered = await client.POST("/authorization/registration", {
  body: { phone_number: phone, email, hash_password: password },
});
check(registered.data !== undefined, "registration answers a token pair");
const first: { access: string; refresh: string } = registered.data;

const again = await client.POST("/authorization/registration", {
  body: { phone_number: phone, email, hash_password: password },
});
// The comparison compiles only because `error` is typed with the route's error codes.
check(again.response.status === 409 && again.error?.error === "user_exists", "409 user_exists");

const byEmail = await client.POST("/authorization/login/email", {
  body: { email, hash_password: password },
});
// A sign-in answers a token pair, or `mfa_required` for an account with a second factor.
check(byEmail.data !== undefined && "refresh" in byEmail.data, "email login");
const byPhone = await client.POST("/authorization/login/phone/number", {
  body: { phone_number: phone, hash_password: password },
});
check(byPhone.data !== undefined && "access" in byPhone.data, "phone login");

const wrong = await client.POST("/authorization/login/email", {
  body: { email, hash_password: "not the password" },
});
check(wrong.response.status === 401 && wrong.error?.error === "invalid_credentials", "401");

const refreshed = await client.POST("/validate/jwt/refresh", { body: { refresh: first.refresh } });
check(refreshed.data?.email === email, "refresh answers a new access token and the email");
const viaQuery = await client.GET("/validate/jwt/refresh", {
  params: { query: { refresh: first.refresh } },
});
check(viaQuery.data?.access !== undefined, "refresh with the token in the query");

const valid = await client.POST("/validate/jwt/access", { body: { access: refreshed.data.access } });
check(valid.data === true, "the new access token is valid");
const forged = await client.GET("/validate/jwt/access", { params: { query: { access: "x.y.z" } } });
check(forged.data === false, "a forged access token is not");

// The account routes declare bearerAuth: the access token goes in the header, never the URL.
const bearer = { Authorization: `Bearer ${byPhone.data.access}` };
const sessions = await client.GET("/authorization/sessions", { headers: bearer });
check(sessions.data !== undefined && sessions.data.sessions.length >= 1, "sessions by header");
const sessionsByPost = await client.POST("/authorization/sessions", { headers: bearer });
check(sessionsByPost.data !== undefined, "sessions by POST with only the header");
const noToken = await client.GET("/authorization/sessions");
check(noToken.response.status === 400 && noToken.error?.error === "invalid_request", "no token");

const loggedOut = await client.POST("/authorization/logout", { body: { refresh: first.refresh } });
check(loggedOut.data === true, "logout");
const revoked = await client.POST("/validate/jwt/refresh", { body: { refresh: first.refresh } });
check(revoked.response.status === 401 && revoked.error?.error === "invalid_token", "401 token");
const everywhere = await client.POST("/authorization/logout", {
  body: { refresh: byEmail.data.refresh, all: true },
});
check(everywhere.data === true, "logout everywhere");

const link = await client.GET("/vk/link");
check(link.data !== undefined && new URL(link.data).searchParams.has("state"), "VK link");
const state = new URL(link.data).searchParams.get("state") ?? "";
const exchange = await client.GET("/vk/get/token", {
  params: { query: { code: "a-code", state: `${state}-other`, device_id: "a-device" } },
});
check(exchange.response.status === 400 && exchange.error?.error === "invalid_state", "400 state");

console.log(JSON.stringify({ ok: true, requests }));

// Run once by compose.yaml's mongo-init service, from inside mongo1's network namespace:
// initiates the replica set rs0, then makes the administrator ("root") and vhod's user
// ("vhod", readWrite on the database vhod) with the passwords from the secret files.
// Running it again finds both done and changes nothing.
const fs = require("fs");
const secret = (name) => fs.readFileSync(`/run/secrets/${name}`, "utf8").trim();

// hello needs no sign-in: a member of an initiated set names it (setName).
const initiated = db.hello().setName !== undefined;
if (!initiated) {
  rs.initiate({
    _id: "rs0",
    members: [
      { _id: 0, host: "mongo1:27017", priority: 2 },
      { _id: 1, host: "mongo2:27017" },
      { _id: 2, host: "mongo3:27017" },
    ],
  });
}
// The first user can be made only on the primary, through the localhost exception.
// mongo1 has the highest priority: it is the primary once the set is up.
for (let waited = 0; !db.hello().isWritablePrimary; waited += 1) {
  if (waited === 120) throw new Error("mongo1 did not become the primary within 120 s");
  sleep(1000);
}
const admin = db.getSiblingDB("admin");
try {
  admin.createUser({ user: "root", pwd: secret("mongo_root_password"), roles: ["root"] });
} catch (error) {
  // Made by an earlier run: the localhost exception is closed, or the user exists. The
  // sign-in below fails, and with it this run, if the administrator is not really there.
  print(`administrator not made now: ${error.codeName}`);
}
admin.auth("root", secret("mongo_root_password"));
const vhod = db.getSiblingDB("vhod");
if (vhod.getUser("vhod") === null) {
  vhod.createUser({
    user: "vhod",
    pwd: secret("mongo_vhod_password"),
    roles: [{ role: "readWrite", db: "vhod" }],
  });
}
print("replica set rs0 and its users are ready");


// Run once by compose.yaml's mongo-init service, from inside mongo1's network namespace:
// initiates the replica set rs0, then makes the administrator ("root") and vhod's user
// ("vhod", readWrite on the database vhod) with the passwords from the secret files.
// Running it again finds both done and changes nothing.
const fs = require("fs");
const secret = (name) => fs.readFileSync(`/run/secrets/${name}`, "utf8").trim();

let initiated = true;
try {
  rs.status();
} catch (error) {
  if (error.codeName === "NotYetInitialized") {
    initiated = false;
  } else if (error.codeName !== "Unauthorized") {
    throw error;  // Unauthorized: users exist, so the set was initiated before
  }
}
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
while (!db.hello().isWritablePrimary) {
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


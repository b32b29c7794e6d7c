#!/usr/bin/env node
// Firestore stand-in: npm @firestore-emulator/server (wire-level gRPC, in memory) on loopback.
// Used by the local stack only when gcloud's own Firestore emulator is missing; local/standins.py
// installs the pinned package (package.json / package-lock.json here) into .local/standins/firestore.
//
//   node server.js [--host 127.0.0.1] [--port 8601] [--modules DIR/node_modules]
//   (or FIRESTORE_STANDIN_HOST / FIRESTORE_STANDIN_PORT / FIRESTORE_STANDIN_MODULES)
//
// The package's own start(port) binds 0.0.0.0, so we bind its grpc-js Server ourselves on the given
// host. Prints "firestore stand-in ready on HOST:PORT" once listening; exits 0 on SIGTERM/SIGINT.
"use strict";

const path = require("node:path");
const { createRequire } = require("node:module");

function option(name, envName, fallback) {
  const flag = `--${name}`;
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i += 1) {
    if (args[i] === flag && i + 1 < args.length) return args[i + 1];
    if (args[i].startsWith(`${flag}=`)) return args[i].slice(flag.length + 1);
  }
  const fromEnv = process.env[envName];
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : fallback;
}

const host = option("host", "FIRESTORE_STANDIN_HOST", "127.0.0.1");
const port = Number.parseInt(option("port", "FIRESTORE_STANDIN_PORT", "8080"), 10);
const modules = path.resolve(
  option(
    "modules",
    "FIRESTORE_STANDIN_MODULES",
    path.join(__dirname, "..", "..", "..", ".local", "standins", "firestore", "node_modules"),
  ),
);

if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`firestore stand-in: bad port ${JSON.stringify(port)}`);
  process.exit(2);
}

// Resolve the package (and the grpc-js copy it uses) from the install directory, not from here.
const fromInstall = createRequire(path.join(modules, "package.json"));
let FirestoreServer;
let grpc;
try {
  ({ FirestoreServer } = fromInstall("@firestore-emulator/server"));
  const pkgDir = path.dirname(fromInstall.resolve("@firestore-emulator/server/package.json"));
  grpc = createRequire(path.join(pkgDir, "package.json"))("@grpc/grpc-js");
} catch (err) {
  console.error(`firestore stand-in: cannot load @firestore-emulator/server from ${modules}: ${err.message}`);
  process.exit(3);
}

const emulator = new FirestoreServer();
const grpcServer = emulator.server; // private in the TypeScript types, plain property at run time
if (!grpcServer || typeof grpcServer.bindAsync !== "function") {
  console.error("firestore stand-in: this @firestore-emulator/server has no grpc-js `server` property");
  process.exit(3);
}

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`firestore stand-in: ${signal}, stopping`);
  // In-memory state, nothing to flush; open Listen streams would hold a graceful shutdown forever.
  grpcServer.forceShutdown();
  process.exit(0);
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));

const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
grpcServer.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, boundPort) => {
  if (err) {
    console.error(`firestore stand-in: cannot listen on ${address}: ${err.message}`);
    process.exit(1);
  }
  console.log(`firestore stand-in ready on ${host}:${boundPort}`);
});

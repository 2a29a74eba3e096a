// npm `convex` clients driven by JSON lines on stdin; what they see goes to stdout as JSON
// lines (tests/convex_clients.py reads them). Values cross as Convex JSON both ways, so an
// Int64 stays an Int64 (a bigint here).
//
// Commands: {op:"client", name, kind:"ws"|"http", url, admin?, token?}
//           {op:"subscribe", client, sub, path, args}   {op:"unsubscribe", sub}
//           {op:"call", client, id, kind:"query"|"mutation"|"action"|"consistentQuery", path, args}
//           {op:"auth", client, token}   {op:"close", client}   {op:"exit"}
// Events:   {event:"update", sub, value, at}   {event:"error", sub, message, data?}
//           {event:"result", id, value, at, seen}   {event:"failed", id, message, convexError, data?}
//           {event:"auth", client, authenticated}   {event:"ready", client}
// `seen` is every subscription's current value on that client when a mutation resolved:
// the client's promise resolves only once its subscriptions show the write.
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const modules = process.env.CONVEX_NODE_MODULES;
const load = (path) => import(pathToFileURL(`${modules}/convex/dist/esm/${path}`).href);
const { ConvexClient, ConvexHttpClient } = await load("browser/index-node.js");
const { convexToJson, jsonToConvex, ConvexError } = await load("values/index.js");

const clients = new Map(); // name -> {kind, client, subs: Map(sub -> unsubscribe)}
const subs = new Map(); // sub -> {client, unsubscribe}

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

function failure(error) {
  const event = { message: String(error.message ?? error), convexError: error instanceof ConvexError };
  if (event.convexError) event.data = convexToJson(error.data);
  return event;
}

function makeClient({ name, kind, url, admin, token }) {
  const options = { skipConvexDeploymentUrlCheck: true, logger: false };
  if (kind === "http") {
    const client = new ConvexHttpClient(url, options);
    if (admin) client.setAdminAuth(admin);
    if (token) client.setAuth(token);
    clients.set(name, { kind, client, subs: new Map() });
    return;
  }
  const client = new ConvexClient(url, options);
  if (admin) client.client.setAdminAuth(admin);
  clients.set(name, { kind, client, subs: new Map() });
  if (token) authenticate({ client: name, token });
}

function authenticate({ client: name, token }) {
  clients.get(name).client.setAuth(
    async () => token,
    (authenticated) => emit({ event: "auth", client: name, authenticated }),
  );
}

function subscribe({ client: name, sub, path, args }) {
  const { client, subs: own } = clients.get(name);
  const unsubscribe = client.onUpdate(
    path,
    jsonToConvex(args),
    (value) => emit({ event: "update", sub, value: convexToJson(value ?? null), at: Date.now() }),
    (error) => emit({ event: "error", sub, ...failure(error) }),
  );
  own.set(sub, unsubscribe);
  subs.set(sub, { client: name, unsubscribe });
}

async function call({ client: name, id, kind, path, args }) {
  const { client, subs: own } = clients.get(name);
  try {
    const value = await client[kind](path, jsonToConvex(args));
    const seen = {};
    for (const [sub, unsubscribe] of own) {
      try {
        const current = unsubscribe.getCurrentValue();
        seen[sub] = current === undefined ? "<none>" : convexToJson(current);
      } catch {
        seen[sub] = "<failed>"; // a failed query's current value is its error, thrown
      }
    }
    emit({ event: "result", id, value: convexToJson(value ?? null), at: Date.now(), seen });
  } catch (error) {
    emit({ event: "failed", id, ...failure(error) });
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  switch (command.op) {
    case "client":
      makeClient(command);
      break;
    case "subscribe":
      subscribe(command);
      break;
    case "unsubscribe": {
      const found = subs.get(command.sub);
      subs.delete(command.sub);
      clients.get(found.client).subs.delete(command.sub);
      found.unsubscribe();
      break;
    }
    case "call":
      call(command); // not awaited: calls overlap as a real app's do
      break;
    case "auth":
      authenticate(command);
      break;
    case "close":
      await clients.get(command.client).client.close?.();
      break;
    case "exit":
      for (const { kind, client } of clients.values()) if (kind === "ws") await client.close();
      process.exit(0);
  }
}

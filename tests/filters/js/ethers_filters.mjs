// ethers v6 JsonRpcProvider (HTTP, polling), for the kinds asked (comma-separated; default all three):
//   logs     contract.on("Ping"): a FilterIdEventSubscriber — eth_newFilter, then eth_getFilterChanges at every
//            new block
//   blocks   provider.on("block"): in ethers v6 a PollingBlockSubscriber — it polls eth_blockNumber and emits
//            every number between two polls; there is no block filter (see providers/subscriber-polling.js)
//   pending  provider.on("pending"): a FilterIdPendingSubscriber — eth_newPendingTransactionFilter, polled at
//            every new block
// The methods sent are reported and checked. ethers reports a failed filter poll (or filter creation) only
// with console.log("@TODO", error), and never recreates a filter: console.log is turned into "error" events
// here, and the harness counts any other stdout line that is not JSON as an error too.
// Usage: node ethers_filters.mjs HTTP_URL ADDRESS [KINDS]
// Prints JSON lines: {"event": "ready"} once the filters were created and the block poller started, then
// "log", "block", "tx" and "error" events; on "stop" (or EOF) on stdin: off(), prints "methods" then "done".
import { createInterface } from "node:readline";
import { Contract, JsonRpcProvider, Network } from "ethers";

const [url, address, kindsArg] = process.argv.slice(2);
const kinds = new Set((kindsArg ?? "logs,blocks,pending").split(","));
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const methods = {};
let consoleErrors = 0;
console.log = (...args) => {
  consoleErrors += 1;
  say({ event: "error", watcher: "console.log", message: args.map((a) => String(a?.stack?.split("\n")[0] ?? a)).join(" ").slice(0, 600) });
};

class RecordingProvider extends JsonRpcProvider {
  async _send(payload) {
    for (const item of [payload].flat()) methods[item.method] = (methods[item.method] ?? 0) + 1;
    return await super._send(payload);
  }
}

const provider = new RecordingProvider(url, Network.from(31337), { staticNetwork: true, pollingInterval: 300 });
provider.on("error", (e) => say({ event: "error", watcher: "provider", message: String(e).slice(0, 500) }));
const contract = new Contract(address, ["event Ping(uint256 seq)"], provider);

if (kinds.has("logs"))
  await contract.on("Ping", (seq, payload) => {
    const l = payload.log;
    say({ event: "log", watcher: "contract.on", tx: l.transactionHash, index: l.index, block: l.blockNumber,
          blockHash: l.blockHash, removed: Boolean(l.removed), seq: Number(seq) });
  });
// the filter subscribers poll at every "block" event: the block poller runs whatever the kinds
await provider.on("block", (n) => { if (kinds.has("blocks")) say({ event: "block", watcher: "provider.on(block)", number: n }); });
if (kinds.has("pending"))
  await provider.on("pending", (hash) => say({ event: "tx", watcher: "provider.on(pending)", hash }));

const readyCheck = setInterval(() => {
  // each filter subscriber sends its eth_new*Filter at once, then eth_getFilterChanges once per block
  const created = (!kinds.has("logs") || methods.eth_newFilter) && (!kinds.has("pending") || methods.eth_newPendingTransactionFilter);
  const polls = (kinds.has("logs") || kinds.has("pending")) ? (methods.eth_getFilterChanges ?? 0) : 1;
  if (created && (polls >= 1 || consoleErrors) && methods.eth_blockNumber) {
    clearInterval(readyCheck);
    say({ event: "ready", methods });
  }
}, 50);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  clearInterval(readyCheck);
  await contract.removeAllListeners();
  await provider.removeAllListeners();
  say({ event: "methods", methods });
  say({ event: "done" });
  provider.destroy();
  process.exit(0);
};
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => { if (line.trim() === "stop") stop(); });
rl.on("close", stop);

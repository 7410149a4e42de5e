// ethers v6 JsonRpcProvider (HTTP, polling): contract.on(event) — a FilterIdEventSubscriber: eth_newFilter,
// then eth_getFilterChanges at every new block — and provider.on("block"), which in ethers v6 is a
// PollingBlockSubscriber: it polls eth_blockNumber and emits every number between two polls (no block filter;
// see providers/subscriber-polling.js) — and provider.on("pending"), a FilterIdPendingSubscriber
// (eth_newPendingTransactionFilter, polled at every new block). The methods sent are reported and checked.
// ethers reports a failed filter poll only with console.log("@TODO", error) on stdout: the harness counts
// any stdout line that is not JSON as an error.
// Usage: node ethers_filters.mjs HTTP_URL ADDRESS
// Prints JSON lines: {"event": "ready"} once the event filter was polled and the block poller started, then
// "log" / "block" / "error" events; on "stop" (or EOF) on stdin: off(), prints "methods" then "done".
import { createInterface } from "node:readline";
import { Contract, JsonRpcProvider, Network } from "ethers";

const [url, address] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const methods = {};

class RecordingProvider extends JsonRpcProvider {
  async _send(payload) {
    for (const item of [payload].flat()) methods[item.method] = (methods[item.method] ?? 0) + 1;
    return await super._send(payload);
  }
}

const provider = new RecordingProvider(url, Network.from(31337), { staticNetwork: true, pollingInterval: 300 });
provider.on("error", (e) => say({ event: "error", watcher: "provider", message: String(e).slice(0, 500) }));
const contract = new Contract(address, ["event Ping(uint256 seq)"], provider);

await contract.on("Ping", (seq, payload) => {
  const l = payload.log;
  say({ event: "log", watcher: "contract.on", tx: l.transactionHash, index: l.index, block: l.blockNumber,
        blockHash: l.blockHash, removed: Boolean(l.removed), seq: Number(seq) });
});
await provider.on("block", (n) => say({ event: "block", watcher: "provider.on(block)", number: n }));
await provider.on("pending", (hash) => say({ event: "tx", watcher: "provider.on(pending)", hash }));

const readyCheck = setInterval(() => {
  if ((methods.eth_getFilterChanges ?? 0) >= 2 && methods.eth_blockNumber) {
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

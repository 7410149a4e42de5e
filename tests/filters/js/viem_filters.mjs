// viem over its HTTP transport, polling: watchContractEvent (eth_newFilter + eth_getFilterChanges when
// `poll: true`; viem falls back to eth_getLogs silently if eth_newFilter fails, so the methods it sent are
// reported and checked), watchBlocks (polls eth_getBlockByNumber; viem has no block-filter watcher) and a
// block filter through viem's own createBlockFilter + getFilterChanges (eth_newBlockFilter), and
// watchPendingTransactions (poll: true → eth_newPendingTransactionFilter + eth_getFilterChanges).
// Usage: node viem_filters.mjs HTTP_URL ADDRESS
// Prints JSON lines: {"event": "ready"} once every filter was polled once, then "log" / "block" / "error"
// events; on "stop" (or EOF) on stdin: unwatches, prints {"event": "methods", ...} then {"event": "done"}.
import { createInterface } from "node:readline";
import { createPublicClient, http, parseAbi } from "viem";

const [url, address] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const methods = {};
const polled = new Set(); // filter ids polled with eth_getFilterChanges
const interval = 300;
const client = createPublicClient({
  pollingInterval: interval,
  transport: http(url, {
    retryCount: 0, // no silent retries: every error Livechain lets through reaches onError
    onFetchRequest: (_request, init) => {
      for (const item of [JSON.parse(init.body)].flat()) {
        methods[item.method] = (methods[item.method] ?? 0) + 1;
        if (item.method === "eth_getFilterChanges") polled.add(item.params[0]);
      }
    },
  }),
});
const error = (watcher) => (e) => say({ event: "error", watcher, message: String(e?.shortMessage ?? e).slice(0, 500), details: String(e?.details ?? "").slice(0, 300) });

const unwatchLogs = client.watchContractEvent({
  address,
  abi: parseAbi(["event Ping(uint256 seq)"]),
  eventName: "Ping",
  poll: true,
  pollingInterval: interval,
  onLogs: (logs) => {
    for (const l of logs)
      say({ event: "log", watcher: "watchContractEvent", tx: l.transactionHash, index: Number(l.logIndex),
            block: Number(l.blockNumber), blockHash: l.blockHash, removed: Boolean(l.removed), seq: Number(l.args.seq) });
  },
  onError: error("watchContractEvent"),
});

const unwatchBlocks = client.watchBlocks({
  poll: true,
  pollingInterval: interval,
  emitMissed: true, // catch up every block between two polls, however many
  onBlock: (b) => say({ event: "block", watcher: "watchBlocks", number: Number(b.number), hash: b.hash }),
  onError: error("watchBlocks"),
});

const unwatchPending = client.watchPendingTransactions({
  poll: true,
  pollingInterval: interval,
  onTransactions: (hashes) => { for (const hash of hashes) say({ event: "tx", watcher: "watchPendingTransactions", hash }); },
  onError: error("watchPendingTransactions"),
});

let running = true;
let blockFilter = null;
const blockFilterLoop = (async () => {
  while (running) {
    try {
      blockFilter ??= await client.createBlockFilter();
      const hashes = await client.getFilterChanges({ filter: blockFilter });
      for (const hash of hashes) say({ event: "block", watcher: "createBlockFilter", hash });
    } catch (e) {
      error("createBlockFilter")(e);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
})();

const readyCheck = setInterval(() => {
  // the three filters exist once three filter ids were polled; watchBlocks has polled once
  if (polled.size >= 3 && methods.eth_getBlockByNumber) {
    clearInterval(readyCheck);
    say({ event: "ready", methods });
  }
}, 50);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  running = false;
  clearInterval(readyCheck);
  unwatchBlocks();
  unwatchLogs();
  unwatchPending();
  await blockFilterLoop;
  if (blockFilter) await client.uninstallFilter({ filter: blockFilter }).catch(error("uninstallFilter"));
  say({ event: "methods", methods });
  say({ event: "done" });
  process.exit(0);
};
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => { if (line.trim() === "stop") stop(); });
rl.on("close", stop);

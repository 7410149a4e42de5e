// viem over its HTTP transport, polling, for the kinds asked (comma-separated; default all three):
//   logs     watchContractEvent with `poll: true` → eth_newFilter + eth_getFilterChanges (viem falls back to
//            eth_getLogs silently when eth_newFilter fails: the methods sent are reported and checked)
//   blocks   watchBlocks with `poll: true` (eth_getBlockByNumber: viem has no block-filter watcher) and a block
//            filter through viem's createBlockFilter + getFilterChanges (eth_newBlockFilter)
//   pending  watchPendingTransactions with `poll: true` → eth_newPendingTransactionFilter + eth_getFilterChanges
// Usage: node viem_filters.mjs HTTP_URL ADDRESS [KINDS]
// Prints JSON lines: {"event": "ready"} once every watcher has polled once (or failed to start), then "log",
// "block", "tx" and "error" events; on "stop" (or EOF) on stdin: unwatches, prints {"event": "methods", ...}
// then {"event": "done"}.
import { createInterface } from "node:readline";
import { createPublicClient, http, parseAbi } from "viem";

const [url, address, kindsArg] = process.argv.slice(2);
const kinds = new Set((kindsArg ?? "logs,blocks,pending").split(","));
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const methods = {};
const interval = 300;
const started = {}; // watcher → true once it has polled (or failed to start)
const polled = new Set(); // filter ids polled with eth_getFilterChanges
let blockFilterId = null; // the one createBlockFilter made
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
const error = (watcher) => (e) => {
  started[watcher] = true;
  say({ event: "error", watcher, message: String(e?.shortMessage ?? e).slice(0, 500), details: String(e?.details ?? "").slice(0, 300) });
};
const unwatch = [];
let running = true;
const loops = [];

if (kinds.has("logs")) {
  started.watchContractEvent = false;
  unwatch.push(client.watchContractEvent({
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
  }));
}

if (kinds.has("blocks")) {
  started.watchBlocks = false;
  unwatch.push(client.watchBlocks({
    poll: true,
    pollingInterval: interval,
    emitMissed: true, // catch up every block between two polls, however many
    onBlock: (b) => { started.watchBlocks = true; say({ event: "block", watcher: "watchBlocks", number: Number(b.number), hash: b.hash }); },
    onError: error("watchBlocks"),
  }));
  started.createBlockFilter = false;
  let blockFilter = null;
  loops.push((async () => {
    while (running) {
      try {
        blockFilter ??= await client.createBlockFilter();
        blockFilterId = blockFilter.id;
        const hashes = await client.getFilterChanges({ filter: blockFilter });
        started.createBlockFilter = true;
        for (const hash of hashes) say({ event: "block", watcher: "createBlockFilter", hash });
      } catch (e) {
        error("createBlockFilter")(e);
      }
      await new Promise((r) => setTimeout(r, interval));
    }
    if (blockFilter) await client.uninstallFilter({ filter: blockFilter }).catch(error("uninstallFilter"));
  })());
}

if (kinds.has("pending")) {
  started.watchPendingTransactions = false;
  unwatch.push(client.watchPendingTransactions({
    poll: true,
    pollingInterval: interval,
    onTransactions: (hashes) => { for (const hash of hashes) say({ event: "tx", watcher: "watchPendingTransactions", hash }); },
    onError: error("watchPendingTransactions"),
  }));
}

// watchContractEvent and watchPendingTransactions say nothing when a poll finds nothing: they have started
// once as many filter ids (besides the block filter's) were polled as there are of them still running
const readyCheck = setInterval(() => {
  const waiting = ["watchContractEvent", "watchPendingTransactions"].filter((w) => started[w] === false);
  const others = [...polled].filter((id) => id !== blockFilterId).length;
  if (waiting.length && others >= waiting.length) for (const w of waiting) started[w] = true;
  if (Object.values(started).every(Boolean)) {
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
  for (const f of unwatch) f();
  await Promise.all(loops);
  say({ event: "methods", methods });
  say({ event: "done" });
  process.exit(0);
};
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => { if (line.trim() === "stop") stop(); });
rl.on("close", stop);

// viem's webSocket transport through Livechain: watch heads and logs, then unwatch (eth_unsubscribe).
// Prints one JSON object per line: {"event": ...}. Usage: node viem_client.mjs WS_URL ADDRESS
import { createPublicClient, webSocket } from "viem";

const [url, address] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));
const client = createPublicClient({ transport: webSocket(url, { retryCount: 0 }) });
const blocks = [];
const logs = [];
let unwatchBlocks, unwatchLogs;
const done = new Promise((resolve) => {
  const check = () => { if (blocks.length >= 3 && logs.length >= 1) resolve(); };
  unwatchBlocks = client.watchBlocks({ onBlock: (b) => { blocks.push(Number(b.number)); check(); },
                                       onError: (e) => say({ event: "error", message: String(e) }) });
  unwatchLogs = client.watchEvent({ address, onLogs: (ls) => { for (const l of ls) logs.push(l.transactionHash); check(); },
                                    onError: (e) => say({ event: "error", message: String(e) }) });
});
setTimeout(() => say({ event: "subscribed" }), 500);
await done;
unwatchBlocks();
unwatchLogs();
say({ event: "unwatched", blocks, logs });
await new Promise((r) => setTimeout(r, 1500));
say({ event: "exit" });
process.exit(0);

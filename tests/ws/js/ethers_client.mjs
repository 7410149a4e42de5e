// ethers v6 WebSocketProvider through Livechain: 'block' and a log filter, then off() (eth_unsubscribe).
// Prints one JSON object per line. Usage: node ethers_client.mjs WS_URL ADDRESS
import { WebSocketProvider } from "ethers";

const [url, address] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));
const provider = new WebSocketProvider(url);
const blocks = [];
const logs = [];
const filter = { address };
const done = new Promise((resolve) => {
  const check = () => { if (blocks.length >= 3 && logs.length >= 1) resolve(); };
  provider.on("block", (n) => { blocks.push(n); check(); });
  provider.on(filter, (log) => { logs.push(log.transactionHash); check(); });
});
await provider.getBlockNumber();
setTimeout(() => say({ event: "subscribed" }), 500);
await done;
await provider.off("block");
await provider.off(filter);
say({ event: "unwatched", blocks, logs });
await new Promise((r) => setTimeout(r, 1500));
say({ event: "exit" });
await provider.destroy();
process.exit(0);

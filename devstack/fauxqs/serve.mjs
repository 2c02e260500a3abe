// Starts the SQS stand-in (fauxqs) bound to loopback only.
// fauxqs's own CLI listens on every interface; the local stack must not.
// Usage: node serve.mjs PORT
import { buildApp } from "fauxqs";
// Not exported by the package; imported by path so queue URLs can name the address clients
// actually used (127.0.0.1:PORT) instead of fauxqs's default sqs.REGION.localhost host.
import { SqsStore } from "./node_modules/fauxqs/dist/sqs/sqsStore.js";

const port = Number.parseInt(process.argv[2] ?? process.env.FAUXQS_PORT ?? "0", 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`fauxqs: invalid port ${process.argv[2]}`);
  process.exit(2);
}
const sqsStore = new SqsStore();
sqsStore.host = ""; // empty: build queue URLs from the request's Host header
const app = buildApp({ logger: false, stores: { sqsStore } });
const address = await app.listen({ port, host: "127.0.0.1" });
// fauxqs moves messages whose visibility timeout ended back to the queue only while a receive
// is waiting, so without a receive GetQueueAttributes kept counting them in flight and a message
// hidden by a lost receive never showed up in the depth. Run its timers on their own, as SQS
// does.
const timers = setInterval(() => sqsStore.processAllTimers(), 250);
timers.unref();
// The parent process reads this line to learn the bound address.
console.log(`fauxqs listening on ${address}`);
const stop = async () => {
  clearInterval(timers);
  await app.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

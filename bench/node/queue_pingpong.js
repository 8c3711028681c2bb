// queue_pingpong: N items through a bounded queue (100), one producer, one
// consumer (Node has no async queue; common.js has a hand-off one).
'use strict';
const { arg, clock, Queue } = require('./common');
const N = arg(1000000);

async function round(n) {
  const q = new Queue(100);
  const p = (async () => { for (let i = 0; i < n; i++) await q.put(i); })();
  const c = (async () => { for (let i = 0; i < n; i++) await q.get(); })();
  await p;
  await c;
}

(async () => {
  await round(process.env.BENCH_WARM ? N : 10000);
  const c = clock();
  await round(N);
  c.report(N);
})();

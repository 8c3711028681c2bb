// semaphore: N async functions through a semaphore(10): acquire,
// sleep(0) (setImmediate), release.
'use strict';
const { arg, clock, Semaphore } = require('./common');
const N = arg(100000);

const sleep0 = () => new Promise((r) => setImmediate(r));

async function round(n) {
  const sem = new Semaphore(10);
  const worker = async () => {
    await sem.acquire();
    try { await sleep0(); } finally { sem.release(); }
  };
  const ps = new Array(n);
  for (let i = 0; i < n; i++) ps[i] = worker();
  await Promise.all(ps);
}

(async () => {
  await round(process.env.BENCH_WARM ? N : 2000);
  const c = clock();
  await round(N);
  c.report(N);
})();

// sleep_gather: N concurrent 1 ms sleeps (setTimeout promises), gathered.
'use strict';
const { arg, clock } = require('./common');
const N = arg(100000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function round(n) {
  const ps = new Array(n);
  for (let i = 0; i < n; i++) ps[i] = sleep(1);
  await Promise.all(ps);
}

(async () => {
  await round(process.env.BENCH_WARM ? N : 2000);
  const c = clock();
  await round(N);
  c.report(N);
})();

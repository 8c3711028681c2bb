// spawn_await: start N async functions that return at once; await them all.
'use strict';
const { arg, clock } = require('./common');
const N = arg(200000);

async function f() { return true; }

async function round(n) {
  const ps = new Array(n);
  for (let i = 0; i < n; i++) ps[i] = f();
  for (let i = 0; i < n; i++) await ps[i];
}

(async () => {
  await round(process.env.BENCH_WARM ? N : 2000);
  const c = clock();
  await round(N);
  c.report(N);
})();

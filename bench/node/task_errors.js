// task_errors: start N async functions that throw at once; await each in
// try/catch.  The Error captures its stack, as a failing luaio task keeps
// its traceback.
'use strict';
const { arg, clock } = require('./common');
const N = arg(100000);

async function f() { throw new Error('boom'); }

async function round(n) {
  const ps = new Array(n);
  for (let i = 0; i < n; i++) ps[i] = f();
  for (let i = 0; i < n; i++) {
    try { await ps[i]; } catch (e) { continue; }
    throw new Error('no error');
  }
}

(async () => {
  await round(process.env.BENCH_WARM ? N : 2000);
  const c = clock();
  await round(N);
  c.report(N);
})();

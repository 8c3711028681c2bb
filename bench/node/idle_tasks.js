// idle_tasks: RSS per async function parked on a promise never resolved.
// Run with --expose-gc.
'use strict';
const { arg, rss } = require('./common');
const N = arg(100000);

const never = new Promise(() => {});
async function park() { await never; }

(async () => {
  global.gc(); global.gc();
  const r0 = rss();
  for (let i = 0; i < N; i++) park();
  await null;
  global.gc(); global.gc();
  const r1 = rss();
  console.log(`RESULT ${((r1 - r0) / N).toFixed(1)}`);
})();

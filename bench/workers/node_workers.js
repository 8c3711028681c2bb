// bench/workers/node_workers.js: Node's worker_threads, the same shapes.
const { Worker, isMainThread, parentPort } = require('worker_threads');
if (!isMainThread) {
  parentPort.on('message', (m) => {
    if (m === 'flood') {
      for (let i = 0; i < 200000; i++) parentPort.postMessage([i, 'x']);
      parentPort.postMessage('end');
    } else parentPort.postMessage(m);
  });
} else {
  const w = new Worker(__filename);
  const n = 20000;
  let i = 0, t0;
  w.on('message', (m) => {
    if (typeof m === 'number') {
      if (m === 200) t0 = process.hrtime.bigint();
      if (m < n + 200) { w.postMessage(m + 1); return; }
      const dt = Number(process.hrtime.bigint() - t0) / 1e3;
      console.log(`node round trip (postMessage): ${(dt / n).toFixed(1)} us`);
      t0 = process.hrtime.bigint();
      w.postMessage('flood');
    } else if (Array.isArray(m)) {
      i++;
    } else if (m === 'end') {
      const dt = Number(process.hrtime.bigint() - t0) / 1e9;
      console.log(`node one way, small arrays: ${(i / dt / 1e6).toFixed(2)} M/s`);
      w.terminate();
    }
  });
  w.postMessage(1);
}

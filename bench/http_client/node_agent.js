// 50 concurrent requests through one keep-alive http.Agent, N in all.
const http = require('http');
const [url, n = 20000, conc = 50] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: +conc });
let left = +n;
function get() {
  return new Promise((ok, fail) => {
    http.get(url, { agent }, (res) => {
      res.on('data', () => {});
      res.on('end', ok);
    }).on('error', fail);
  });
}
async function worker() { while (left > 0) { left--; await get(); } }
(async () => {
  for (let i = 0; i < 200; i++) await get();
  const w0 = process.hrtime.bigint(), c0 = process.cpuUsage();
  await Promise.all(Array.from({ length: +conc }, worker));
  const w = Number(process.hrtime.bigint() - w0), c = process.cpuUsage(c0);
  console.log(`RESULT ${(w / n).toFixed(0)} ${((c.user + c.system) * 1000 / n).toFixed(0)}`);
  agent.destroy();
})();

// Shared by the Node.js workloads: N from argv, the clock, the result line,
// and the small primitives Node lacks (a FIFO, a semaphore, a bounded queue).
'use strict';

exports.arg = (def) => (process.argv[2] ? +process.argv[2] : def);

exports.clock = () => {
  const w0 = process.hrtime.bigint(), c0 = process.cpuUsage();
  return {
    report(n) {
      const wall = Number(process.hrtime.bigint() - w0);
      const c = process.cpuUsage(c0); // microseconds
      const cpu = (c.user + c.system) * 1000;
      console.log(`RESULT ${(wall / n).toFixed(1)} ${(cpu / n).toFixed(1)}`);
    },
  };
};

// An array-backed FIFO with O(1) shift.
class Fifo {
  constructor() { this.a = []; this.h = 0; }
  get length() { return this.a.length - this.h; }
  push(x) { this.a.push(x); }
  shift() {
    const x = this.a[this.h];
    this.a[this.h++] = undefined;
    if (this.h > 1024 && this.h * 2 > this.a.length) {
      this.a = this.a.slice(this.h);
      this.h = 0;
    }
    return x;
  }
}
exports.Fifo = Fifo;

// FIFO-fair semaphore that hands a released permit to the first waiter.
exports.Semaphore = class {
  constructor(n) { this.value = n; this.waiters = new Fifo(); }
  acquire() {
    if (this.value > 0) { this.value--; return Promise.resolve(); }
    return new Promise((r) => this.waiters.push(r));
  }
  release() {
    if (this.waiters.length > 0) this.waiters.shift()();
    else this.value++;
  }
};

// Bounded FIFO queue with direct hand-off, like asyncio.Queue.
exports.Queue = class {
  constructor(maxsize) {
    this.max = maxsize; this.items = new Fifo();
    this.getters = new Fifo(); this.putters = new Fifo();
  }
  put(x) {
    if (this.getters.length > 0) { this.getters.shift()(x); return; }
    if (this.items.length < this.max) { this.items.push(x); return; }
    return new Promise((r) => this.putters.push([x, r]));
  }
  get() {
    if (this.items.length > 0) {
      const x = this.items.shift();
      if (this.putters.length > 0) {
        const [y, r] = this.putters.shift();
        this.items.push(y);
        r();
      }
      return x;
    }
    return new Promise((r) => this.getters.push(r));
  }
};

exports.rss = () => process.memoryUsage().rss;

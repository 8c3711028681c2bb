// tcp_echo server on Node's net module.  usage: node tcp_echo.js PORT
'use strict';
const net = require('net');
const server = net.createServer((s) => {
  s.setNoDelay(true);
  s.on('data', (d) => s.write(d));
  s.on('error', () => {});
});
server.listen(+process.argv[2] || 7000, '127.0.0.1', 1024, () => console.log('READY'));

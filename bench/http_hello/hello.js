// bench/http_hello: Node's http module, the same answer.
const http = require("http");
const srv = http.createServer((req, res) => {
  res.writeHead(200, {"content-type": "text/plain; charset=utf-8"});
  res.end("Hello, World!");
});
srv.listen(0, "127.0.0.1", () => console.log(srv.address().port));

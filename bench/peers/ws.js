// ws.js: the chat server users would otherwise write in Node, on the ws
// package: rooms as sets of sockets, one send per recipient. Same contract
// subset as uws.js. PORT (default 8080); DEFLATE=1 turns on ws'
// perMessageDeflate with its defaults (a context per connection, messages
// of 1 KiB or more compressed). For make compare only.
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');
const { roomOf, clientId, welcome, fromClient } = require('./envelope');

const port = Number(process.env.PORT || 8080);
const rooms = new Map(); // room -> Set of sockets
const everyone = new Set();

const server = http.createServer((req, res) => {
  res.writeHead(req.url === '/healthz' ? 200 : 404).end(req.url === '/healthz' ? 'ok' : '');
});
const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024,
  perMessageDeflate: !!process.env.DEFLATE });

server.on('upgrade', (req, socket, head) => {
  const room = roomOf(req.url);
  if (room === undefined) return socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
  wss.handleUpgrade(req, socket, head, (s) => join(s, room));
});

function join(s, room) {
  const id = clientId();
  everyone.add(s);
  if (room !== null) {
    if (!rooms.has(room)) rooms.set(room, new Set());
    rooms.get(room).add(s);
  }
  s.send(welcome(room, id));
  s.on('message', (data, isBinary) => {
    if (isBinary) return s.close(1003, 'binary');
    const out = fromClient(data.toString(), room, id);
    if (out === null) return;
    const frame = Buffer.from(out); // once, not per recipient
    for (const r of room === null ? everyone : rooms.get(room)) r.send(frame, { binary: false });
  });
  s.on('close', () => {
    everyone.delete(s);
    if (room !== null) {
      const set = rooms.get(room);
      set.delete(s);
      if (set.size === 0) rooms.delete(room);
    }
  });
}

server.listen(port, '127.0.0.1');

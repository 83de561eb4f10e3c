// bun.js: the chat server on Bun.serve (uWebSockets inside, Bun's own
// pub/sub doing the fan-out: a room's members subscribe to its topic and to
// 'global'). Run with the bun binary of the npm package @oven/bun-linux-x64.
// PORT (default 8080); DEFLATE=1 answers permessage-deflate offers
// (perMessageDeflate: true). Same contract subset as uws.js. For make
// compare only.
'use strict';
const { roomOf, clientId, welcome, fromClient } = require('./envelope');

const port = Number(process.env.PORT || 8080);

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: port,
  fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === '/healthz') return new Response('ok');
    const room = roomOf(url.pathname + url.search);
    if (room === undefined) return new Response('not found', { status: 404 });
    if (srv.upgrade(req, { data: { room: room, id: clientId() } })) return undefined;
    return new Response('upgrade required', { status: 426 });
  },
  websocket: {
    maxPayloadLength: 64 * 1024,
    // As uws.js: close a reader that falls behind, never drop for it.
    backpressureLimit: 1024 * 1024,
    closeOnBackpressureLimit: true,
    idleTimeout: 120,
    perMessageDeflate: !!process.env.DEFLATE,
    open(s) {
      const u = s.data;
      if (u.room !== null) s.subscribe('room:' + u.room);
      s.subscribe('global');
      s.send(welcome(u.room, u.id));
    },
    message(s, message) {
      if (typeof message !== 'string') return s.close(1003, 'binary');
      const u = s.data;
      const out = fromClient(message, u.room, u.id);
      if (out !== null) server.publish(u.room === null ? 'global' : 'room:' + u.room, out);
    },
  },
});

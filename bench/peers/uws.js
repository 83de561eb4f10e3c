// uws.js: a chat server on uWebSockets (the C++ core, through uWebSockets.js)
// speaking chat-api's contract subset, with uWebSockets' own pub/sub doing
// the fan-out: a room's members subscribe to its topic and to 'global'.
// PORT (default 8080); DEFLATE=1 answers permessage-deflate offers with
// uWebSockets' shared compressor (each message compressed alone). For make
// compare only.
'use strict';
const uWS = require('@trufflesuite/uws-js-unofficial');
const { roomOf, clientId, welcome, fromClient } = require('./envelope');

const port = Number(process.env.PORT || 8080);
const decoder = new TextDecoder();

function ws(pattern) {
  return {
    maxPayloadLength: 64 * 1024,
    compression: process.env.DEFLATE ? uWS.SHARED_COMPRESSOR : uWS.DISABLED,
    // Its default of 64 KiB skips (drops for) a reader that falls behind;
    // chat-api closes such a reader instead. Both: close, never drop.
    maxBackpressure: 1024 * 1024,
    closeOnBackpressureLimit: true,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const room = roomOf(req.getUrl());
      if (room === undefined) {
        res.writeStatus('404 Not Found').end('not found');
        return;
      }
      res.upgrade({ room: room, id: clientId() }, req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'),
        context);
    },
    open: (s) => {
      const u = s.getUserData();
      if (u.room !== null) s.subscribe('room:' + u.room);
      s.subscribe('global');
      s.send(welcome(u.room, u.id));
    },
    message: (s, message, isBinary) => {
      if (isBinary) return s.end(1003, 'binary');
      const u = s.getUserData();
      const out = fromClient(decoder.decode(message), u.room, u.id);
      // compress: the shared compressor's frame (publish sends plain without it).
      if (out !== null) app.publish(u.room === null ? 'global' : 'room:' + u.room, out, false, true);
    },
  };
}

const app = uWS.App()
  .ws('/ws/*', ws()).ws('/ws', ws())
  .ws('/api/chat-api/ws/*', ws()).ws('/api/chat-api/ws', ws())
  .get('/healthz', (res) => { res.end('ok'); })
  .listen('127.0.0.1', port, (tok) => {
    if (!tok) { console.error('uws: cannot listen on ' + port); process.exit(1); }
  });

// envelope.js: the part of chat-api's contract the peers speak
// (docs/protocol.md): the room from the path, the welcome, and the envelope
// around each client message. Shared by uws.js and ws.js so both peers do
// the same work per message as chat-api does (parse, build, serialize once).
'use strict';
const crypto = require('crypto');

const POD = process.env.POD_ID || 'peer-1';
const ROOM_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

// '/api/chat-api/ws/lobby' or '/ws/lobby' -> 'lobby'; '/ws' -> null (global);
// undefined when the path is not a WebSocket path or the room is bad.
function roomOf(url) {
  const path = url.split('?')[0].replace(/^\/api\/chat-api/, '');
  if (path === '/ws' || path === '/ws/') return null;
  if (!path.startsWith('/ws/')) return undefined;
  const room = decodeURIComponent(path.slice(4));
  return ROOM_RE.test(room) ? room : undefined;
}

function clientId() {
  return crypto.randomBytes(8).toString('hex');
}

function envelope(id, type, room, from, dataJson) {
  return '{"id":' + JSON.stringify(id) + ',"type":' + JSON.stringify(type) +
    ',"room":' + JSON.stringify(room) + ',"from":' + JSON.stringify(from) +
    ',"data":' + dataJson + ',"timestamp":"' + new Date().toISOString() +
    '","pod":"' + POD + '"}';
}

function welcome(room, client) {
  return envelope(crypto.randomUUID(), 'system', room, 'system',
    JSON.stringify({ event: 'welcome', client_id: client, room: room, pod: POD }));
}

// A client's text into the envelope every recipient gets; null to refuse.
const TYPES = new Set(['chat', 'presence', 'notification']);
function fromClient(text, room, client) {
  let m;
  try { m = JSON.parse(text); } catch (e) { m = undefined; }
  if (m === null || typeof m !== 'object' || Array.isArray(m)) {
    return envelope(crypto.randomUUID(), 'chat', room, client, JSON.stringify({ text: text }));
  }
  const type = m.type === undefined ? 'chat' : m.type;
  if (!TYPES.has(type)) return null;
  const id = typeof m.id === 'string' && m.id.length <= 64 ? m.id : crypto.randomUUID();
  const data = m.data === undefined ? '{}' : JSON.stringify(m.data);
  return envelope(id, type, room, client, data);
}

module.exports = { POD, roomOf, clientId, welcome, fromClient };

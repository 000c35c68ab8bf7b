// A small MQTT 3.1.1 client over WebSocket (subprotocol "mqtt"), written for the console so that
// nothing is fetched from a CDN at run time. It does what the console needs and no more:
// CONNECT (clean session; user name and password, asked afresh before every connection),
// SUBSCRIBE, receive PUBLISH at QoS 0/1 (PUBACK sent), PINGREQ keep-alive (a missing PINGRESP
// closes the link),
// and reconnection with capped back-off (subscriptions are made again after each connect).
// Publishing is not needed by the console and not implemented.
//
// Wire format: MQTT Version 3.1.1 (OASIS Standard), sections 2 (fixed header, remaining length)
// and 3 (CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP).

const CONNECT = 1, CONNACK = 2, PUBLISH = 3, PUBACK = 4, SUBSCRIBE = 8, SUBACK = 9,
  PINGREQ = 12, PINGRESP = 13;

const enc = new TextEncoder();
const dec = new TextDecoder();

function utf8(s) {
  const b = enc.encode(s);
  return [b.length >> 8, b.length & 0xff, ...b];
}

function remainingLength(n) {
  const out = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

function packet(type, flags, body) {
  return new Uint8Array([(type << 4) | flags, ...remainingLength(body.length), ...body]);
}

export class MqttClient {
  /**
   * @param {string|function} url  ws:// or wss:// URL of the broker's MQTT-over-WebSocket
   *   endpoint, or an async function giving it afresh before every connection (AWS IoT's
   *   custom authorizer takes the token in the URL)
   * @param {object} opts {clientId, keepAlive (s), onMessage(topic, Uint8Array), onState(state),
   *   credentials: async () => {username, password} (optional)}
   */
  constructor(url, opts) {
    this.url = url;
    this.clientId = opts.clientId || 'console-' + Math.random().toString(36).slice(2, 10);
    this.keepAlive = opts.keepAlive || 120;
    this.onMessage = opts.onMessage || (() => {});
    this.onState = opts.onState || (() => {});
    this.credentials = opts.credentials || null;
    this.filters = [];
    this.buffer = new Uint8Array(0);
    this.nextId = 1;
    this.backoff = 500;
    this.ws = null;
    this.timer = null;
    this.closed = false;
  }

  async connect() {
    this.closed = false;
    this.onState('connecting');
    let creds = null;
    if (this.credentials) {
      try {
        creds = await this.credentials();
      } catch (e) {
        this.retry();
        return;
      }
    }
    let ws;
    try {
      const url = typeof this.url === 'function' ? await this.url() : this.url;
      ws = new WebSocket(url, ['mqtt']);
    } catch (e) {
      this.retry();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      const flags = 0x02 /* clean session */ | (creds ? 0xc0 /* user name, password */ : 0);
      const body = [
        ...utf8('MQTT'), 4, flags,
        this.keepAlive >> 8, this.keepAlive & 0xff,
        ...utf8(this.clientId),
      ];
      if (creds) body.push(...utf8(creds.username), ...utf8(creds.password));
      this.send(packet(CONNECT, 0, body));
    };
    ws.onmessage = (ev) => this.receive(new Uint8Array(ev.data));
    ws.onclose = () => {
      clearInterval(this.timer);
      this.onState('offline');
      if (!this.closed) this.retry();
    };
    ws.onerror = () => {};
  }

  close() {
    this.closed = true;
    clearInterval(this.timer);
    if (this.ws) this.ws.close();
  }

  retry() {
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 10000);
    setTimeout(() => this.connect(), wait);
  }

  send(bytes) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  /** Subscribes now if connected, and again after every reconnect. */
  subscribe(filter, qos = 1) {
    if (!this.filters.some((f) => f.filter === filter)) this.filters.push({ filter, qos });
    if (this.connected) this.sendSubscribe([{ filter, qos }]);
  }

  sendSubscribe(list) {
    const id = this.nextId++ & 0xffff || 1;
    const body = [id >> 8, id & 0xff];
    for (const { filter, qos } of list) body.push(...utf8(filter), qos);
    this.send(packet(SUBSCRIBE, 0x02, body));
  }

  receive(chunk) {
    const merged = new Uint8Array(this.buffer.length + chunk.length);
    merged.set(this.buffer);
    merged.set(chunk, this.buffer.length);
    this.buffer = merged;
    for (;;) {
      if (this.buffer.length < 2) return;
      let len = 0, mult = 1, i = 1, byte;
      do {
        if (i >= this.buffer.length) return;
        byte = this.buffer[i++];
        len += (byte & 0x7f) * mult;
        mult *= 128;
        if (i > 5) { this.ws.close(); return; } // malformed length: drop the connection
      } while (byte & 0x80);
      if (this.buffer.length < i + len) return;
      const header = this.buffer[0];
      const body = this.buffer.subarray(i, i + len);
      this.buffer = this.buffer.slice(i + len);
      this.handle(header >> 4, header & 0x0f, body);
    }
  }

  handle(type, flags, body) {
    switch (type) {
      case CONNACK:
        if (body.length >= 2 && body[1] === 0) {
          this.connected = true;
          this.backoff = 500;
          this.onState('online');
          if (this.filters.length) this.sendSubscribe(this.filters);
          clearInterval(this.timer);
          // A PINGREQ every half keep-alive; a PINGRESP not back by the next one means the
          // link is dead (a NAT or proxy dropped it silently): close, and reconnect.
          this.pong = true;
          this.timer = setInterval(() => {
            if (!this.pong) { this.ws.close(); return; }
            this.pong = false;
            this.send(packet(PINGREQ, 0, []));
          }, (this.keepAlive * 1000) / 2);
        } else {
          this.onState('refused');
          this.ws.close();
        }
        break;
      case PUBLISH: {
        const qos = (flags >> 1) & 0x03;
        if (body.length < 2) return;
        const tlen = (body[0] << 8) | body[1];
        if (body.length < 2 + tlen) return;
        const topic = dec.decode(body.subarray(2, 2 + tlen));
        let p = 2 + tlen;
        if (qos > 0) {
          if (body.length < p + 2) return;
          const id = [body[p], body[p + 1]];
          p += 2;
          this.send(packet(PUBACK, 0, id));
        }
        try {
          this.onMessage(topic, body.slice(p));
        } catch (e) {
          console.error('message handler failed', e);
        }
        break;
      }
      case PINGRESP:
        this.pong = true;
        break;
      case SUBACK:
        break;
      default:
        break;
    }
  }
}

/** Whether an MQTT topic matches a filter with + and # wildcards. */
export function topicMatches(filter, topic) {
  const f = filter.split('/'), t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

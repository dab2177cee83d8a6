// The UI is only a client of /api/v1 (Mailpit's API), /api/sandbox (our extras) and /api/events.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(method, url, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (!response.ok) {
    const text = await response.text().catch(() => "");
    throw new ApiError(response.status, text || response.statusText);
  }
  return response;
}

export const getJSON = async (url) => (await request("GET", url)).json();
export const getText = async (url) => (await request("GET", url)).text();

function withParams(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export const enc = encodeURIComponent;

/** One page of the listing, or of a search when `query` is set. */
export function listMessages({ start, limit, query, mailbox }) {
  if (query) return getJSON(withParams("/api/v1/search", { query, start, limit, mailbox }));
  return getJSON(withParams("/api/v1/messages", { start, limit, mailbox }));
}

export const getMessage = (id) => getJSON(`/api/v1/message/${enc(id)}`);
export const getHeaders = (id) => getJSON(`/api/v1/message/${enc(id)}/headers`);
export const getRaw = (id) => getText(`/api/v1/message/${enc(id)}/raw`);
export const rawUrl = (id) => `/api/v1/message/${enc(id)}/raw?dl=1`;
export const partUrl = (id, part) => `/api/v1/message/${enc(id)}/part/${enc(part)}`;
export const thumbUrl = (id, part) => `/api/v1/message/${enc(id)}/part/${enc(part)}/thumb`;
export const previewUrl = (id, remote) => `/view/${enc(id)}.html${remote ? "?remote=1" : ""}`;
export const getPreviewInfo = (id) => getJSON(`/api/sandbox/message/${enc(id)}/preview`);
export const getTrace = (id) => getJSON(`/api/sandbox/message/${enc(id)}/trace`);
export const getAuth = (id, mailbox) =>
  getJSON(`/api/sandbox/message/${enc(id)}/auth${mailbox ? `?mailbox=${enc(mailbox)}` : ""}`);
export const getMailboxes = () => getJSON("/api/sandbox/mailboxes");

// The relay's queue (one item per deferred recipient) and the sandbox clock it runs on.
export const getQueue = () => getJSON("/api/sandbox/queue");
export const retryQueued = (id, recipient) =>
  request("POST", withParams(`/api/sandbox/queue/${enc(id)}/retry`, { recipient })).then((r) => r.json());
export const dropQueued = (id, recipient) =>
  request("DELETE", withParams(`/api/sandbox/queue/${enc(id)}`, { recipient })).then((r) => r.json());
export const getClock = () => getJSON("/api/sandbox/clock");
/** {advance: seconds} or {next_retry: true}; answers once the queue has worked through what came due. */
export const setClock = (body) => request("POST", "/api/sandbox/clock", body).then((r) => r.json());

export const deleteMessages = (ids) => request("DELETE", "/api/v1/messages", ids ? { IDs: ids } : undefined);
export const deleteSearch = (query, mailbox) =>
  request("DELETE", withParams("/api/v1/search", { query, mailbox }));
export const setRead = (ids, read) => request("PUT", "/api/v1/messages", { IDs: ids, Read: read });
export const getTags = () => getJSON("/api/v1/tags");
export const setTags = (ids, tags) => request("PUT", "/api/v1/tags", { IDs: ids, Tags: tags });
/** Mark what a search (Mailpit's Search) and/or a mailbox (our ?mailbox=) shows; neither: everything. */
export const setReadMatching = (query, mailbox, read) =>
  request("PUT", withParams("/api/v1/messages", { mailbox }), query ? { Search: query, Read: read } : { Read: read });

/** The live stream: calls onEvent({Type, Data}); reconnects with backoff; onState(true|false). */
export function connectEvents(onEvent, onState) {
  let delay = 500;
  let socket = null;
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/api/events`);
    socket.addEventListener("open", () => {
      delay = 500;
      onState(true);
    });
    socket.addEventListener("message", (e) => {
      let event;
      try {
        event = JSON.parse(e.data);
      } catch {
        return;
      }
      onEvent(event);
    });
    socket.addEventListener("close", () => {
      onState(false);
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    });
  };
  open();
  return () => socket && socket.close();
}

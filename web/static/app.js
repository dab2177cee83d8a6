// Mailsandbox UI: the message list, mailboxes, the relay queue, search, live events and keyboard moves.
import * as api from "./api.js";
import { h, clear, icon } from "./dom.js";
import { relative, fullDate, size, who } from "./format.js";
import { MessageView } from "./view.js";
import { QueueView } from "./queue.js";
import { Selection } from "./select.js";
import { Notifier } from "./notify.js";
import { sortMailboxes, MailboxFilter } from "./mailboxes.js";
import { renderTagList, tagChips, tagQuery } from "./tags.js";

const PAGE = 50;
const $ = (id) => document.getElementById(id);

const state = {
  start: 0,
  query: "",
  mailbox: "",
  total: 0,
  unread: 0,
  messages: [],
  selected: null,
  mode: "mail", // "mail": the message list; "queue": the relay's deferred recipients
  seq: 0, // guards against an older listing response landing after a newer one
  loading: false, // a listing is on its way
  missed: false, // an event came while it was: the listing may predate it, so it is read again
};

const list = $("messages");
const queue = new QueueView(
  {
    list: $("queue"),
    empty: $("queue-empty"),
    clock: $("queue-clock"),
    skip: $("skip-30"),
    next: $("skip-next"),
    badge: $("queue-count"),
    entry: $("queue-section"),
  },
  {
    open: (id) => select(id, true, "delivery"),
    changed: (id) => view.onDelivery(id),
    toast,
  },
);
const view = new MessageView($("view"), $("view-empty"), {
  onClose: () => select(null),
  onDeleted: (id) => (state.mode === "queue" ? removeIds([id]) : removeAndAdvance(id)),
  onRead: (id, read) => applyRead([id], read),
  onTags: (id, tags) => applyTags(id, tags),
  pickTag: (tag) => pickTag(tag),
  relayOn: () => queue.relayOn,
  retry: (id, recipient) => queue.retry(id, recipient),
  drop: (id, recipient) => queue.drop(id, recipient),
  toast,
});

const picks = new Selection(
  {
    bar: $("bulk-bar"),
    count: $("bulk-count"),
    all: $("select-all"),
    read: $("bulk-read"),
    unread: $("bulk-unread"),
    remove: $("bulk-delete"),
    clear: $("bulk-clear"),
  },
  {
    ids: () => state.messages.map((m) => m.ID),
    applyRead: (ids, read) => applyRead(ids, read),
    removed: (ids) => removeIds(ids),
    toast,
  },
);
const notifier = new Notifier($("notify-button"), { open: (id) => select(id, true), toast });
const boxFilter = new MailboxFilter($("mailbox-filter"), $("mailboxes"), $("no-mailbox-match"));

// -- listing -------------------------------------------------------------------------------------

async function load() {
  const seq = ++state.seq;
  state.loading = true;
  state.missed = false;
  let page;
  try {
    page = await api.listMessages({ start: state.start, limit: PAGE, query: state.query, mailbox: state.mailbox });
  } catch (error) {
    if (seq === state.seq) state.loading = false;
    toast(`Could not load messages: ${error.message}`);
    return;
  }
  if (seq !== state.seq) return;
  state.loading = false;
  // An event applied while this page was on its way is overwritten by it, and the page may have been
  // read before that event: read it again (debounced, so a stream of arrivals costs a reload a tick).
  if (state.missed) scheduleReload();
  state.messages = page.messages || [];
  if (Array.isArray(page.tags)) renderTagList(page.tags, state.query, pickTag);
  state.total = page.messages_count;
  if (typeof page.unread === "number") state.unread = page.unread;
  if (state.start > 0 && state.messages.length === 0 && state.total > 0) {
    state.start = Math.max(0, Math.floor((state.total - 1) / PAGE) * PAGE);
    return load();
  }
  $("new-pill").hidden = true;
  renderList();
}

function row(m) {
  const recipients = (m.To || []).concat(m.Cc || []).map(who).filter(Boolean);
  const classes = ["message"];
  if (!m.Read) classes.push("unread");
  if (m.ID === state.selected) classes.push("selected");
  return h(
    "li",
    {
      class: classes.join(" "),
      role: "option",
      "aria-selected": m.ID === state.selected ? "true" : "false",
      dataset: { id: m.ID },
      onclick: () => select(m.ID, true),
    },
    picks.box(m.ID),
    h(
      "div",
      { class: "line" },
      h("span", { class: "dot", "aria-label": m.Read ? null : "unread" }),
      h("span", { class: "from", title: m.From ? m.From.Address : "" }, who(m.From) || "(no sender)"),
      h("time", { class: "time", datetime: m.Created, title: fullDate(m.Created) }, relative(m.Created)),
    ),
    h(
      "div",
      { class: "line" },
      h("span", { class: "subject" }, m.Subject || "(no subject)"),
      m.Attachments ? h("span", { class: "clip", title: `${m.Attachments} attachment(s)` }, icon("clip")) : null,
    ),
    tagChips(m.Tags, pickTag),
    h(
      "div",
      { class: "line small muted" },
      h("span", { class: "to" }, recipients.length ? `To ${recipients.join(", ")}` : ""),
      h("span", { class: "size" }, size(m.Size)),
    ),
    m.Snippet ? h("div", { class: "snippet small muted" }, m.Snippet) : null,
  );
}

function renderList() {
  clear(list);
  list.append(...state.messages.map(row));
  $("list-empty").hidden = state.messages.length > 0;
  const first = state.messages.length ? state.start + 1 : 0;
  const last = state.start + state.messages.length;
  $("range").textContent = state.total
    ? `${first.toLocaleString()}–${last.toLocaleString()} of ${state.total.toLocaleString()}`
    : "";
  $("page-prev").disabled = state.start === 0;
  $("page-next").disabled = last >= state.total;
  $("delete-all").textContent = state.query || state.mailbox ? "Delete matching" : "Delete all";
  $("delete-all").disabled = state.total === 0;
  picks.sync();
  renderUnread();
}

function renderUnread() {
  $("all-unread").textContent = state.unread ? state.unread.toLocaleString() : "";
  document.title = state.unread ? `(${state.unread}) Mailsandbox` : "Mailsandbox";
}

function refreshTimes() {
  for (const el of list.querySelectorAll("time.time")) el.textContent = relative(el.getAttribute("datetime"));
}

let reloadTimer = 0;
function scheduleReload(delay = 150) {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(load, delay);
}

// -- selection and navigation ----------------------------------------------------------------------

function select(id, open = true, tab = undefined) {
  state.selected = id;
  queue.highlight(id);
  for (const el of list.children) {
    const on = el.dataset.id === id;
    el.classList.toggle("selected", on);
    el.setAttribute("aria-selected", on ? "true" : "false");
    if (on) el.scrollIntoView({ block: "nearest" });
  }
  document.body.classList.toggle("viewing", Boolean(id));
  if (!id) {
    view.close();
    setHash();
    return;
  }
  if (open) view.open(id, tab);
  setHash();
}

function move(delta) {
  if (state.mode === "queue") return queue.move(delta);
  if (!state.messages.length) return;
  const index = state.messages.findIndex((m) => m.ID === state.selected);
  const next = index < 0 ? 0 : index + delta;
  if (next >= 0 && next < state.messages.length) select(state.messages[next].ID);
  else if (next >= state.messages.length && state.start + PAGE < state.total) page(1, "first");
  else if (next < 0 && state.start > 0) page(-1, "last");
}

async function page(direction, pick) {
  const start = state.start + direction * PAGE;
  if (start < 0 || start >= state.total) return;
  state.start = start;
  await load();
  list.scrollTop = 0;
  if (pick && state.messages.length) {
    select(pick === "first" ? state.messages[0].ID : state.messages[state.messages.length - 1].ID);
  }
}

function removeAndAdvance(id) {
  let index = state.messages.findIndex((m) => m.ID === id);
  // the server's delete event can come before the answer to our own delete: it closed the view, and
  // where the message was is all that is left to advance from
  if (index < 0 && closedAt && closedAt.id === id) index = closedAt.index;
  closedAt = null;
  removeIds([id]);
  const next = state.messages[Math.min(index, state.messages.length - 1)];
  select(next ? next.ID : null);
}

let closedAt = null; // the open message that a delete event closed, and its place in the list

function removeIds(ids) {
  const gone = new Set(ids);
  const closing = state.selected && gone.has(state.selected)
    ? { id: state.selected, index: state.messages.findIndex((m) => m.ID === state.selected) }
    : null;
  const before = state.messages.length;
  state.messages = state.messages.filter((m) => !gone.has(m.ID));
  const removed = before - state.messages.length;
  if (removed) {
    state.total = Math.max(0, state.total - removed);
    renderList();
    // refill the page from the server
    scheduleReload(300);
  }
  if (closing) {
    closedAt = closing;
    state.selected = null;
    document.body.classList.remove("viewing");
    view.close();
    setHash();
  }
}

function applyRead(ids, read) {
  const set = ids ? new Set(ids) : null;
  for (const m of state.messages) {
    if (!set || set.has(m.ID)) m.Read = read;
  }
  for (const el of list.children) {
    if (!set || set.has(el.dataset.id)) el.classList.toggle("unread", !read);
  }
  view.setRead(ids, read);
  scheduleMailboxes();
}

// -- tags ------------------------------------------------------------------------------------------

function pickTag(tag) {
  const query = tagQuery(tag);
  $("search").value = query;
  closeSidebar();
  search(query);
}

let tagsTimer = 0;
function scheduleTags() {
  clearTimeout(tagsTimer);
  tagsTimer = setTimeout(async () => {
    try {
      renderTagList(await api.getTags(), state.query, pickTag);
    } catch {
      // the next listing brings them
    }
  }, 200);
}

/** A message's tags changed (an "update" event, or the view's editor): redraw its row and the view. */
function applyTags(id, tags) {
  const index = state.messages.findIndex((m) => m.ID === id);
  if (index >= 0) {
    state.messages[index].Tags = tags;
    const el = list.querySelector(`li[data-id="${CSS.escape(id)}"]`);
    if (el) el.replaceWith(row(state.messages[index]));
  }
  view.setTags(id, tags);
  scheduleTags();
}

// -- live events -----------------------------------------------------------------------------------

function matchesView(summary) {
  if (state.mailbox && !(summary.Mailboxes || []).includes(state.mailbox)) return false;
  return true;
}

function onEvent(event) {
  const data = event.Data;
  if (state.loading) state.missed = true;
  switch (event.Type) {
    case "new":
      if (!data || !data.ID) return;
      if (state.query) {
        scheduleReload();
      } else if (matchesView(data)) {
        state.total += 1;
        if (state.start === 0) {
          if (!state.messages.some((m) => m.ID === data.ID)) {
            state.messages.unshift(data);
            if (state.messages.length > PAGE) state.messages.pop();
          }
          renderList();
          const el = list.querySelector(`li[data-id="${CSS.escape(data.ID)}"]`);
          if (el) el.classList.add("arrived");
        } else {
          $("new-pill").hidden = false;
          renderList();
        }
      }
      if (!data.Read) state.unread += 1;
      notifier.arrived(data);
      if (data.Tags && data.Tags.length) scheduleTags();
      renderUnread();
      scheduleMailboxes();
      break;
    case "delete":
      removeIds(data && data.IDs ? data.IDs : data && data.ID ? [data.ID] : []);
      scheduleMailboxes();
      queue.schedule();
      break;
    case "update":
      if (data && typeof data.Read === "boolean") {
        applyRead(data.IDs || (data.ID ? [data.ID] : []), data.Read);
      }
      if (data && data.ID && Array.isArray(data.Tags)) {
        if (state.query) scheduleReload(); // a tag: search may now match it, or no longer
        else applyTags(data.ID, data.Tags);
      }
      break;
    case "truncate":
      state.messages = [];
      state.total = 0;
      state.start = 0;
      if (state.selected) select(null);
      renderList();
      scheduleReload(50);
      scheduleMailboxes();
      queue.schedule();
      break;
    case "prune":
      scheduleReload(50);
      scheduleMailboxes();
      queue.schedule();
      break;
    case "stats":
      if (data && typeof data.Unread === "number") {
        state.unread = data.Unread;
        renderUnread();
      }
      break;
    case "delivery":
      if (data) view.onDelivery(data.ID);
      queue.schedule();
      break;
    default:
      break;
  }
}

function onLive(up) {
  const live = $("live");
  live.textContent = up ? "live" : "offline";
  live.classList.toggle("up", up);
  if (up && onLive.wasDown) {
    load();
    loadMailboxes();
    queue.load();
  }
  onLive.wasDown = !up;
}

// -- mailboxes -------------------------------------------------------------------------------------

async function loadMailboxes() {
  let boxes;
  try {
    boxes = await api.getMailboxes();
  } catch {
    return;
  }
  const ul = clear($("mailboxes"));
  for (const box of sortMailboxes(boxes)) {
    const button = h(
      "button",
      {
        type: "button",
        class: `mailbox${state.mode === "mail" && box.Mailbox === state.mailbox ? " active" : ""}`,
        dataset: { mailbox: box.Mailbox },
        title: `${box.Total} messages, ${box.Unread} unread`,
        onclick: () => chooseMailbox(box.Mailbox),
      },
      h("span", { class: "mailbox-name" }, box.Mailbox),
      h("span", { class: "badge" }, box.Unread ? box.Unread.toLocaleString() : ""),
    );
    ul.append(h("li", {}, button));
  }
  $("no-mailboxes").hidden = boxes.length > 0;
  boxFilter.update(boxes.length);
}

let mailboxTimer = 0;
function scheduleMailboxes() {
  clearTimeout(mailboxTimer);
  mailboxTimer = setTimeout(loadMailboxes, 400);
}

// The list pane shows either the messages or the queue; the message view works the same for both.
function setMode(mode) {
  state.mode = mode;
  $("list-pane").hidden = mode !== "mail";
  $("queue-pane").hidden = mode !== "queue";
  $("queue-button").classList.toggle("active", mode === "queue");
  $("queue-button").setAttribute("aria-current", mode === "queue" ? "page" : "false");
}

function showQueue() {
  setMode("queue");
  for (const el of document.querySelectorAll(".mailbox[data-mailbox]")) el.classList.remove("active");
  closeSidebar();
  setHash();
  queue.load();
}

function chooseMailbox(mailbox) {
  setMode("mail");
  state.mailbox = mailbox;
  state.start = 0;
  for (const el of document.querySelectorAll(".mailbox")) {
    el.classList.toggle("active", el.dataset.mailbox === mailbox);
  }
  closeSidebar();
  setHash();
  load();
}

// -- actions ---------------------------------------------------------------------------------------

async function markAllRead() {
  // Only what is shown: the search and the mailbox, all their pages. Messages outside the current page
  // follow through the stream's update frames.
  const scoped = state.query || state.mailbox;
  try {
    await api.setReadMatching(state.query, state.mailbox, true);
    applyRead(scoped ? state.messages.map((m) => m.ID) : null, true);
  } catch (error) {
    toast(`Could not mark read: ${error.message}`);
  }
}

async function deleteAll() {
  const scoped = state.query || state.mailbox;
  const what = scoped ? `all ${state.total.toLocaleString()} matching messages` : "every message";
  if (!window.confirm(`Delete ${what}?`)) return;
  try {
    if (state.query) await api.deleteSearch(state.query, state.mailbox);
    else if (state.mailbox) await deleteMailbox(state.mailbox);
    else await api.deleteMessages(null);
  } catch (error) {
    toast(`Could not delete: ${error.message}`);
    return;
  }
  state.start = 0;
  load();
  scheduleMailboxes();
}

// A whole mailbox: collect its IDs page by page (the search API wants a query), then delete them.
async function deleteMailbox(mailbox) {
  const ids = [];
  for (let start = 0; ; start += 1000) {
    const page = await api.listMessages({ start, limit: 1000, mailbox });
    ids.push(...page.messages.map((m) => m.ID));
    if (page.messages.length < 1000) break;
  }
  if (ids.length) await api.deleteMessages(ids);
}

function search(query) {
  if (state.mode === "queue") {
    setMode("mail");
    for (const el of document.querySelectorAll(".mailbox[data-mailbox]")) {
      el.classList.toggle("active", el.dataset.mailbox === state.mailbox);
    }
  }
  state.query = query.trim();
  state.start = 0;
  setHash();
  const seq = state.seq + 1; // the listing this search starts
  load().then(() => {
    // The message open before the search stays open only if the search lists it.
    if (seq !== state.seq || state.mode !== "mail" || !state.selected) return;
    if (!state.messages.some((m) => m.ID === state.selected)) select(null);
  });
}

// -- URL state: #q=...&mailbox=...&id=... survives a reload --------------------------------------

function setHash() {
  const params = new URLSearchParams();
  if (state.query) params.set("q", state.query);
  if (state.mailbox) params.set("mailbox", state.mailbox);
  if (state.mode === "queue") params.set("view", "queue");
  if (state.selected) params.set("id", state.selected);
  const hash = params.toString();
  history.replaceState(null, "", hash ? `#${hash}` : location.pathname);
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  state.query = params.get("q") || "";
  state.mailbox = params.get("mailbox") || "";
  state.mode = params.get("view") === "queue" ? "queue" : "mail";
  return params.get("id");
}

// -- chrome ----------------------------------------------------------------------------------------

let toastTimer = 0;
function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), 4000);
}

function openSidebar() {
  document.body.classList.add("sidebar-open");
  $("scrim").hidden = false;
  $("menu-button").setAttribute("aria-expanded", "true");
}

function closeSidebar() {
  document.body.classList.remove("sidebar-open");
  $("scrim").hidden = true;
  $("menu-button").setAttribute("aria-expanded", "false");
}

function onKey(event) {
  const help = $("help");
  if (help.open) {
    // A modal dialog owns the keys; Esc closes it (the browser's own cancel can be swallowed by focus).
    if (event.key === "Escape") {
      event.preventDefault();
      help.close();
    }
    return;
  }
  const target = event.target;
  const typing = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement;
  if (typing) {
    if (event.key === "Escape") target.blur();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const keys = {
    j: () => move(1),
    ArrowDown: () => move(1),
    k: () => move(-1),
    ArrowUp: () => move(-1),
    "/": () => $("search").focus(),
    Delete: () => view.deleteCurrent(),
    "#": () => view.deleteCurrent(),
    u: () => view.toggleRead(),
    x: () => state.mode === "mail" && picks.toggle(state.selected),
    "]": () => state.mode === "mail" && page(1), // the queue view has no pages
    "[": () => state.mode === "mail" && page(-1),
    Escape: () => (document.body.classList.contains("sidebar-open") ? closeSidebar() : select(null)),
  };
  const action = keys[event.key];
  if (action) {
    event.preventDefault();
    action();
  }
}

function init() {
  $("menu-button").append(icon("menu"));
  $("page-prev").append(icon("left"));
  $("page-next").append(icon("right"));
  $("menu-button").addEventListener("click", openSidebar);
  $("scrim").addEventListener("click", closeSidebar);
  $("all-mail").addEventListener("click", () => chooseMailbox(""));
  $("queue-button").addEventListener("click", showQueue);
  $("page-prev").addEventListener("click", () => page(-1));
  $("page-next").addEventListener("click", () => page(1));
  $("mark-all-read").addEventListener("click", markAllRead);
  $("delete-all").addEventListener("click", deleteAll);
  $("new-pill-button").addEventListener("click", () => {
    state.start = 0;
    load();
  });
  $("search-help").addEventListener("click", () => $("help").showModal());
  const input = $("search");
  // A phone cannot show the operator list: a short placeholder there (the ? button has the list).
  const narrow = window.matchMedia("(max-width: 760px)");
  const long = input.placeholder;
  const placeholder = () => (input.placeholder = narrow.matches ? "Search mail" : long);
  narrow.addEventListener("change", placeholder);
  placeholder();
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    search(input.value);
  });
  let typingTimer = 0;
  input.addEventListener("input", () => {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => search(input.value), 250);
  });
  document.addEventListener("keydown", onKey);
  setInterval(refreshTimes, 30000);
  setInterval(() => {
    queue.tick();
    view.tick();
  }, 15000);

  const id = readHash();
  input.value = state.query;
  if (state.mode === "queue") showQueue();
  else for (const el of document.querySelectorAll(".mailbox")) el.classList.toggle("active", el.dataset.mailbox === state.mailbox);
  load().then(() => {
    if (id) select(id);
  });
  loadMailboxes();
  if (state.mode !== "queue") queue.load();
  // The socket's first open reloads too: what arrived between the first list and the socket's
  // subscription was announced before anyone here listened (seen under load: a new message never shown).
  onLive.wasDown = true;
  api.connectEvents(onEvent, onLive);
}

init();

// The Delivery tab: a message's relay trace as a timeline, per recipient, try by try, hop by hop.
import { h } from "./dom.js";
import { clockTime, fullEpoch, span, until } from "./format.js";

const CODE = /^\d{3}[ -]/;
const key = (address) => String(address || "").toLowerCase();
const ok = (a) => a.Code >= 200 && a.Code < 300;
const dropped = (a) => a.Status === "dropped";
// What ends a try: a host took the message, refused it for good, or the user dropped it.
const decisive = (a) => dropped(a) || ok(a) || a.Code >= 500;

/**
 * Splits one recipient's attempts (oldest first) into tries. The trace is flat, so a new try is
 * recognised where the MX list starts over: a first-hop host already asked in this try, a more
 * preferred host after a less preferred one, or anything after the try was decided.
 */
export function tries(attempts) {
  const out = [];
  let current = null;
  for (const a of attempts) {
    let fresh = !current || dropped(a);
    if (!fresh && !a.Hop) {
      const firsts = current.filter((x) => !x.Hop);
      const last = firsts[firsts.length - 1];
      fresh =
        !last || decisive(last) || firsts.some((x) => x.Host === a.Host) || (a.Preference ?? 0) < (last.Preference ?? 0);
    }
    if (fresh) {
      current = [];
      out.push(current);
    }
    current.push(a);
  }
  return out;
}

/** One attempt's status; a gateway's 250 (it answers once its next hop took the mail) is "relayed". */
function outcome(a, next) {
  if (dropped(a)) return { label: "dropped", kind: "" };
  if (ok(a)) return next && next.Hop > a.Hop ? { label: "relayed", kind: "ok" } : { label: "delivered", kind: "ok" };
  if (a.Code >= 500) return { label: "bounced", kind: "bad" };
  if (a.Code >= 400) return { label: "deferred", kind: "warn" };
  return { label: "no connection", kind: "warn" };
}

/** The capture transaction's own hop for a catch-all recipient (synthesized by the relay). */
function isLocal(list) {
  const [a] = list;
  return list.length === 1 && ok(a) && !a.Hop && a.Preference == null && /local mailbox/i.test(a.Reply || "");
}

/** Where a recipient stands: its queue item decides while it waits; otherwise the last try's first hop. */
function standing(list, item) {
  if (item) return list.length ? { label: "deferred", kind: "warn" } : { label: "queued", kind: "" };
  if (!list.length) return { label: "unknown", kind: "" };
  if (isLocal(list)) return { label: "delivered locally", kind: "ok" };
  const last = tries(list).pop();
  const first = last.filter((a) => !a.Hop).pop() || last[0];
  if (dropped(first)) return { label: "dropped", kind: "" };
  if (ok(first)) return { label: "delivered", kind: "ok" };
  return { label: "bounced", kind: "bad" }; // a 5xx, or the queue gave up on a temporary failure
}

const replyText = (a) => (a.Code && CODE.test(a.Reply || "") ? a.Reply.slice(4) : a.Reply || "");

function dialogue(a, id, ui) {
  const lines = a.Dialogue || [];
  if (!lines.length) return null;
  const body = h("pre", { class: "dialogue-body" });
  for (const line of lines) {
    const who = line.startsWith("C:") ? "c" : line.startsWith("S:") ? "s" : "note";
    body.append(h("span", { class: who }, line), "\n");
  }
  const details = h("details", { class: "dialogue", open: ui.expanded.has(id) }, h("summary", { class: "small" }, "SMTP dialogue"), body);
  // Live refreshes redraw the timeline: remember what the user opened.
  details.addEventListener("toggle", () => (details.open ? ui.expanded.add(id) : ui.expanded.delete(id)));
  return details;
}

function when(at, first) {
  return h(
    "time",
    { class: "step-time small muted", datetime: new Date(at * 1000).toISOString(), title: fullEpoch(at) },
    `+${span(at - first)} · ${clockTime(at, first)}`,
  );
}

function step(a, index, group, first, rcpt, ui) {
  const next = group[group.indexOf(a) + 1];
  const { label, kind } = outcome(a, next);
  const parent = a.Hop ? group.slice(0, group.indexOf(a)).reverse().find((x) => x.Hop === a.Hop - 1) : null;
  return h(
    "li",
    { class: `step ${kind}${a.Hop ? " inner" : ""}`, dataset: { host: a.Host, status: label } },
    h(
      "div",
      { class: "step-head" },
      h("span", { class: "step-host" }, a.Host),
      a.Preference != null ? h("span", { class: "pref", title: "MX preference: lower is tried first" }, `MX ${a.Preference}`) : null,
      parent ? h("span", { class: "muted small" }, `passed on by ${parent.Host}`) : null,
      h("span", { class: `tag ${kind} step-status` }, label),
      h("span", { class: "spacer" }),
      when(a.Timestamp, first),
    ),
    h(
      "div",
      { class: "step-reply" },
      a.Code ? h("span", { class: `code ${kind}` }, String(a.Code)) : null,
      h("span", { class: "reply-text" }, replyText(a)),
    ),
    dialogue(a, `${key(rcpt)}#${index}`, ui),
  );
}

const nextAt = (at, now) => `${until(at - now)} · ${clockTime(at, now)}`;

/** Moves the "Next retry in …" labels on as the sandbox clock runs (no request, no redraw). */
export function tickDelivery(root, now) {
  for (const el of root.querySelectorAll("time.next-at")) el.textContent = nextAt(Number(el.dataset.at), now);
}

function pending(item, now) {
  const at = item.NextAttemptTimestamp;
  return h(
    "li",
    { class: "step pending" },
    h(
      "div",
      { class: "step-head" },
      h("span", { class: "step-host" }, "Next retry"),
      h("span", { class: "muted small" }, `attempt ${item.Attempts + 1}`),
      h("span", { class: "spacer" }),
      h("time", { class: "step-time small muted next-at", dataset: { at: String(at) }, title: fullEpoch(at) }, nextAt(at, now)),
    ),
    item.Warned ? h("div", { class: "small muted" }, "A delay warning went to the sender.") : null,
  );
}

function timeline(list, item, now, rcpt, ui) {
  const ol = h("ol", { class: "timeline" });
  const first = list.length ? list[0].Timestamp : now;
  const groups = tries(list);
  let index = 0;
  groups.forEach((group, n) => {
    if (groups.length > 1 && !dropped(group[0])) {
      const label = n === 0 ? "First try" : `Retry ${n}`;
      ol.append(h("li", { class: "try-mark small" }, label, h("span", { class: "muted" }, ` · +${span(group[0].Timestamp - first)}`)));
    }
    for (const a of group) ol.append(step(a, index++, group, first, rcpt, ui));
  });
  if (item) ol.append(pending(item, now));
  return ol;
}

function local(a, rcpt, ui) {
  return h(
    "div",
    { class: "local-hop" },
    h(
      "div",
      { class: "step-head" },
      h("span", { class: "code ok" }, String(a.Code)),
      h("span", { class: "small" }, "Captured in its mailbox by ", h("strong", { class: "step-host" }, a.Host), " (this sandbox)"),
      h("span", { class: "spacer" }),
      h("time", { class: "step-time small muted", title: fullEpoch(a.Timestamp) }, clockTime(a.Timestamp)),
    ),
    dialogue(a, `${key(rcpt)}#0`, ui),
  );
}

function tally(list) {
  const n = tries(list).filter((g) => !dropped(g[0])).length;
  if (!n) return "";
  const spent = list[list.length - 1].Timestamp - list[0].Timestamp;
  return n === 1 ? "1 try" : `${n} tries over ${span(spent)}`;
}

/**
 * The whole tab. data = {attempts: trace items, queued: this message's queue items, now: sandbox
 * epoch seconds, recipients: the envelope's RCPT TO order}; ui = {expanded: Set of open dialogues, onRetry(recipient), onDrop(recipient)}.
 */
export function renderDelivery(data, ui) {
  const byRecipient = new Map();
  for (const address of data.recipients || []) byRecipient.set(key(address), { address, list: [], item: null });
  const add = (address) => {
    if (!byRecipient.has(key(address))) byRecipient.set(key(address), { address, list: [], item: null });
    return byRecipient.get(key(address));
  };
  for (const a of data.attempts) add(a.Recipient).list.push(a);
  for (const item of data.queued) add(item.Recipient).item = item;

  const root = h("div", { class: "delivery" });
  const counts = new Map();
  const sections = [];
  for (const { address, list, item } of byRecipient.values()) {
    if (!list.length && !item) continue; // not traced (the relay was off when it came)
    const state = standing(list, item);
    counts.set(state.label, (counts.get(state.label) || 0) + 1);
    const head = h(
      "header",
      { class: "rcpt-head" },
      h("span", { class: "rcpt-addr" }, address),
      h("span", { class: `tag ${state.kind} rcpt-state` }, state.label),
      h("span", { class: "muted small tally" }, isLocal(list) ? "catch-all" : tally(list)),
      h("span", { class: "spacer" }),
      item ? h("button", { type: "button", class: "button small", onclick: () => ui.onRetry(address) }, "Retry now") : null,
      item ? h("button", { type: "button", class: "button small danger", onclick: () => ui.onDrop(address) }, "Drop") : null,
    );
    const body = isLocal(list) ? local(list[0], address, ui) : timeline(list, item, data.now, address, ui);
    sections.push(h("section", { class: `rcpt ${state.kind}`, dataset: { recipient: address } }, head, body));
  }
  const summary = [...counts].map(([label, n]) => `${n} ${label}`).join(" · ");
  const total = sections.length;
  root.append(
    h("p", { class: "delivery-summary small muted" }, `${total} recipient${total === 1 ? "" : "s"}: ${summary}`),
    ...sections,
  );
  return root;
}

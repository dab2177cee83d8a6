// The Queue view: deferred recipients waiting for a retry, "Retry now" / "Drop", and the clock controls.
import * as api from "./api.js";
import { h, clear } from "./dom.js";
import { clockTime, fullEpoch, span, until } from "./format.js";

const SKIP = 30 * 60; // the "Skip 30 min" button: one default retry interval

export class QueueView {
  /**
   * els: {list, empty, clock, skip, next, badge, entry (the sidebar section)}; hooks: {open(id), toast(text),
   * changed(id|null) after an action moved the queue or the clock}.
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    this.items = [];
    this.clock = null; // GET /api/sandbox/clock, and when (real time) it was read
    this.readAt = 0;
    this.selected = null; // the message ID open from this view
    this.seq = 0;
    this.timer = 0;
    els.skip.addEventListener("click", () => this.skip({ advance: SKIP }, "Skipped 30 minutes"));
    els.next.addEventListener("click", () => this.skip({ next_retry: true }, "Skipped to the next retry"));
  }

  /** Whether the relay runs (the clock answer then carries the retry settings). */
  get relayOn() {
    return Boolean(this.clock && "RetryInterval" in this.clock);
  }

  /** The sandbox's time now: it moves in real time, plus whatever was skipped. */
  now() {
    return this.clock ? this.clock.Now + (Date.now() - this.readAt) / 1000 : Date.now() / 1000;
  }

  setClock(clock) {
    if (!clock || typeof clock.Now !== "number") return;
    this.clock = clock;
    this.readAt = Date.now();
  }

  async load() {
    const seq = ++this.seq;
    let items;
    let clock;
    try {
      [items, clock] = await Promise.all([api.getQueue(), api.getClock()]);
    } catch {
      return;
    }
    if (seq !== this.seq) return;
    this.items = Array.isArray(items) ? items : [];
    this.setClock(clock);
    this.render();
  }

  schedule(delay = 100) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), delay);
  }

  render() {
    const { list, empty, badge, entry, next } = this.els;
    entry.hidden = !this.relayOn && this.items.length === 0;
    badge.textContent = this.items.length ? this.items.length.toLocaleString() : "";
    entry.title = `${this.items.length} deferred recipient${this.items.length === 1 ? "" : "s"}`;
    next.disabled = this.items.length === 0;
    clear(list).append(...this.items.map((item) => this.row(item)));
    empty.hidden = this.items.length > 0;
    this.tick();
  }

  row(item) {
    const at = item.NextAttemptTimestamp;
    const stop = (fn) => (event) => {
      event.stopPropagation(); // the row itself opens the message
      fn();
    };
    return h(
      "li",
      {
        class: `message queue-item${item.ID === this.selected ? " selected" : ""}`,
        dataset: { id: item.ID, recipient: item.Recipient },
        onclick: () => this.hooks.open(item.ID),
      },
      h(
        "div",
        { class: "line" },
        h("span", { class: "from q-rcpt", title: item.Recipient }, item.Recipient),
        h("time", { class: "time q-next", dataset: { at: String(at) }, title: fullEpoch(at) }, ""),
      ),
      h(
        "div",
        { class: "line" },
        h("span", { class: "subject q-subject" }, item.Subject || "(no subject)"),
        h("span", { class: "tag warn q-attempts" }, `${item.Attempts} attempt${item.Attempts === 1 ? "" : "s"}`),
      ),
      item.LastError ? h("div", { class: "q-error small", title: item.LastError }, item.LastError) : null,
      h(
        "div",
        { class: "line q-actions" },
        h("span", { class: "small muted q-from" }, item.From ? `From ${item.From}` : "From <> (null sender)"),
        item.Warned ? h("span", { class: "tag", title: "A delay notification went to the sender" }, "warned") : null,
        h("button", { type: "button", class: "button small", onclick: stop(() => this.retry(item.ID, item.Recipient)) }, "Retry now"),
        h("button", { type: "button", class: "button small danger", onclick: stop(() => this.drop(item.ID, item.Recipient)) }, "Drop"),
      ),
    );
  }

  /** Refreshes the relative times (and the clock) without a request. */
  tick() {
    const now = this.now();
    for (const el of this.els.list.querySelectorAll("time.q-next")) {
      const at = Number(el.dataset.at);
      el.textContent = `${until(at - now)} · ${clockTime(at, now)}`;
    }
    const clock = this.els.clock;
    clear(clock);
    if (!this.clock) return;
    const offset = this.clock.Offset || 0;
    clock.append("Clock ", h("strong", {}, clockTime(now)));
    if (offset >= 1) clock.append(h("span", { class: "tag warn" }, `+${span(offset)}`));
    clock.title = `The sandbox clock: ${fullEpoch(now)}${offset >= 1 ? `, ${span(offset)} ahead of real time` : " (real time)"}`;
  }

  highlight(id) {
    this.selected = id;
    for (const el of this.els.list.children) {
      const on = el.dataset.id === id;
      el.classList.toggle("selected", on);
      if (on) el.scrollIntoView({ block: "nearest" });
    }
  }

  /** j/k in the queue: the next message (a message with two deferred recipients has two rows). */
  move(delta) {
    const ids = [...new Set(this.items.map((item) => item.ID))];
    if (!ids.length) return;
    const index = ids.indexOf(this.selected);
    const next = index < 0 ? 0 : index + delta;
    if (next >= 0 && next < ids.length) this.hooks.open(ids[next]);
  }

  // -- actions -----------------------------------------------------------------------------------

  async retry(id, recipient) {
    let result;
    try {
      result = await api.retryQueued(id, recipient);
    } catch (error) {
      this.hooks.toast(`Could not retry: ${error.message}`);
      this.load();
      return;
    }
    const still = (result.Queued || []).find((item) => item.Recipient === recipient);
    this.hooks.toast(still ? `${recipient}: deferred again (${still.LastError || "no answer"})` : `${recipient}: no longer queued`);
    await this.load();
    this.hooks.changed(id);
  }

  async drop(id, recipient) {
    try {
      await api.dropQueued(id, recipient);
    } catch (error) {
      this.hooks.toast(`Could not drop: ${error.message}`);
      this.load();
      return;
    }
    this.hooks.toast(`${recipient}: dropped from the queue, no bounce sent`);
    await this.load();
    this.hooks.changed(id);
  }

  async skip(body, done) {
    const { skip, next } = this.els;
    skip.disabled = next.disabled = true;
    try {
      this.setClock(await api.setClock(body));
      this.hooks.toast(done);
    } catch (error) {
      this.hooks.toast(`Could not move the clock: ${error.message}`);
    } finally {
      skip.disabled = false;
      next.disabled = this.items.length === 0;
    }
    await this.load();
    this.hooks.changed(null);
  }
}

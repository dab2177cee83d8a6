// The message view: header, actions and tabs (HTML, text, headers, raw, attachments, MIME, envelope, delivery,
// authentication).
import * as api from "./api.js";
import { h, clear, icon } from "./dom.js";
import { address, addresses, fullDate, size } from "./format.js";
import { renderDelivery, tickDelivery } from "./trace.js";
import { authTab } from "./auth.js";
import { renderChecks } from "./checks.js";
import { renderPreview } from "./preview.js";
import { highlightHtml } from "./highlight.js";
import { saveTags, tagEditor } from "./tags.js";

const RAW_LIMIT = 2_000_000; // characters of source shown inline; the download has everything
const HIGHLIGHT_LIMIT = 300_000; // characters of HTML source coloured; past that it is shown plain

const TABS = [
  ["html", "HTML"],
  ["source", "HTML source"],
  ["text", "Text"],
  ["headers", "Headers"],
  ["raw", "Raw"],
  ["attachments", "Attachments"],
  ["mime", "MIME"],
  ["envelope", "Envelope"],
  ["delivery", "Delivery"],
  ["auth", "Authentication"],
  ["checks", "Checks"],
];

export class MessageView {
  constructor(root, empty, hooks) {
    this.root = root;
    this.empty = empty;
    this.hooks = hooks;
    this.message = null;
    this.delivery = null; // {attempts, queued, now} once loaded for the open message
    this.expanded = new Set(); // SMTP dialogues the user opened, kept across live refreshes
    this.tab = "html"; // the tab the user last chose: it stays chosen from message to message
    this.current = "html"; // the tab shown (the chosen one may not exist for this message)
    this.traceSeq = 0;
    this.traceTimer = 0;
    this.remoteAllowed = new Set(); // message IDs whose remote content the user allowed
    this.width = "desktop"; // the preview width chosen (phone, tablet, desktop); kept across messages
    this.token = 0;
  }

  /** Shows a message; `tab` (e.g. "delivery" from the queue) becomes the chosen tab. */
  async open(id, tab) {
    if (tab) this.tab = tab;
    const token = ++this.token;
    let message;
    try {
      message = await api.getMessage(id);
    } catch (error) {
      if (token === this.token) this.hooks.toast(`Could not open the message: ${error.message}`);
      return;
    }
    if (token !== this.token) return;
    this.message = message;
    this.delivery = null;
    this.expanded.clear();
    this.render();
    // GET /api/v1/message/{ID} marks the message read (as Mailpit does); reflect it in the list now.
    this.hooks.onRead(message.ID, true);
    this.loadTrace(token);
  }

  close() {
    this.token += 1;
    clearTimeout(this.traceTimer);
    this.message = null;
    clear(this.root);
    this.root.hidden = true;
    this.empty.hidden = false;
  }

  // The trace, with this message's queue items and the sandbox clock (times in the trace are on it).
  async loadTrace(token) {
    const id = this.message.ID;
    const seq = ++this.traceSeq;
    const [trace, queue, clock] = await Promise.all([
      api.getTrace(id).catch(() => []), // no relay, or nothing was relayed
      api.getQueue().catch(() => []),
      api.getClock().catch(() => null),
    ]);
    if (token !== this.token || seq !== this.traceSeq) return;
    this.delivery = {
      attempts: Array.isArray(trace) ? trace : [],
      queued: (Array.isArray(queue) ? queue : []).filter((item) => item.ID === id),
      now: clock && typeof clock.Now === "number" ? clock.Now : Date.now() / 1000,
      recipients: (this.message.Envelope && this.message.Envelope.RcptTo) || [],
      readAt: Date.now(),
    };
    const has = this.available("delivery");
    this.tabButtons.delivery.hidden = !has;
    if (this.current === "delivery" && !has) this.showTab(this.fallbackTab(), false);
    else if (this.tab === "delivery" && has) this.showTab("delivery", false);
  }

  /** A "delivery" event, or a queue or clock action: redraw the open message's timeline. */
  onDelivery(id) {
    if (!this.message || (id && this.message.ID !== id)) return;
    // A pass through the queue sends a burst of events: one reload for the lot.
    clearTimeout(this.traceTimer);
    const token = this.token;
    this.traceTimer = setTimeout(() => token === this.token && this.loadTrace(token), 60);
  }

  /** The sandbox clock runs in real time: keep "next retry in …" true between refreshes. */
  tick() {
    if (!this.delivery || this.current !== "delivery") return;
    tickDelivery(this.panel, this.delivery.now + (Date.now() - this.delivery.readAt) / 1000);
  }

  async queueAction(recipient, drop) {
    if (!this.message) return;
    await (drop ? this.hooks.drop : this.hooks.retry)(this.message.ID, recipient); // then redraws us
  }

  setTags(id, tags) {
    if (this.message && this.message.ID === id) {
      this.message.Tags = tags;
      this.renderTags();
    }
  }

  async saveTags(tags) {
    if (!this.message) return;
    const id = this.message.ID;
    let stored;
    try {
      await saveTags(id, tags);
      stored = (await api.getMessage(id)).Tags; // as stored: cleaned, in the store's spelling
    } catch (error) {
      this.hooks.toast(`Could not set tags: ${error.message}`);
      return;
    }
    this.hooks.onTags(id, stored || []);
  }

  renderTags() {
    if (!this.tagsBox) return;
    clear(this.tagsBox);
    this.tagsBox.append(
      tagEditor(this.message.Tags, { onPick: (tag) => this.hooks.pickTag(tag), save: (tags) => this.saveTags(tags) }),
    );
  }

  setRead(ids, read) {
    if (this.message && (!ids || ids.includes(this.message.ID))) {
      this.message.Read = read;
      this.renderReadButton();
    }
  }

  async toggleRead() {
    if (!this.message) return;
    const read = !this.message.Read;
    try {
      await api.setRead([this.message.ID], read);
    } catch (error) {
      this.hooks.toast(`Could not update: ${error.message}`);
      return;
    }
    this.message.Read = read;
    this.renderReadButton();
    this.hooks.onRead(this.message.ID, read);
  }

  async deleteCurrent() {
    if (!this.message) return;
    const id = this.message.ID;
    try {
      await api.deleteMessages([id]);
    } catch (error) {
      this.hooks.toast(`Could not delete: ${error.message}`);
      return;
    }
    this.hooks.onDeleted(id);
  }

  // -- rendering -------------------------------------------------------------------------------

  render() {
    const m = this.message;
    clear(this.root);
    this.root.hidden = false;
    this.empty.hidden = true;
    this.readButton = h("button", { type: "button", class: "button", onclick: () => this.toggleRead() });
    const toolbar = h(
      "div",
      { class: "view-toolbar" },
      h(
        "button",
        { type: "button", class: "icon-button narrow-only", "aria-label": "Back to the list", onclick: () => this.hooks.onClose() },
        icon("back"),
      ),
      h("span", { class: "spacer" }),
      this.readButton,
      h("a", { class: "button", href: api.rawUrl(m.ID), download: `${m.ID}.eml`, title: "Download the raw message" }, icon("download"), " .eml"),
      h("button", { type: "button", class: "button danger", onclick: () => this.deleteCurrent(), title: "Delete (Del)" }, icon("trash"), " Delete"),
    );
    this.renderReadButton();

    const meta = h("dl", { class: "meta" });
    const line = (label, value, cls) => {
      if (value) meta.append(h("dt", {}, label), h("dd", { class: cls || null }, value));
    };
    line("From", address(m.From));
    line("To", addresses(m.To));
    line("Cc", addresses(m.Cc));
    line("Bcc", addresses(m.Bcc));
    line("Reply-To", addresses(m.ReplyTo));
    line("Date", fullDate(m.Date || m.Created));
    line("Size", size(m.Size));
    this.tagsBox = h("dd", { class: "tags-row" });
    meta.append(h("dt", {}, "Tags"), this.tagsBox);
    this.renderTags();

    this.tabButtons = {};
    const tabs = h("div", { class: "tabs", role: "tablist" });
    for (const [key, label] of TABS) {
      const count = key === "attachments" ? (m.Attachments || []).length + (m.Inline || []).length : null;
      const button = h(
        "button",
        { type: "button", role: "tab", class: "tab", dataset: { tab: key }, onclick: () => this.showTab(key) },
        label,
        count ? h("span", { class: "tab-count" }, String(count)) : null,
      );
      button.hidden = !this.available(key);
      this.tabButtons[key] = button;
      tabs.append(button);
    }
    this.panel = h("div", { class: "tab-panel", role: "tabpanel" });
    this.root.append(
      toolbar,
      h("header", { class: "view-head" }, h("h1", { class: "view-subject" }, m.Subject || "(no subject)"), meta),
      tabs,
      this.panel,
    );
    this.showTab(this.available(this.tab) ? this.tab : this.fallbackTab(), false);
  }

  fallbackTab() {
    return this.message.HTML ? "html" : "text";
  }

  renderReadButton() {
    if (!this.readButton || !this.message) return;
    clear(this.readButton).append(
      icon(this.message.Read ? "mail" : "open"),
      this.message.Read ? " Mark unread" : " Mark read",
    );
  }

  available(key) {
    const m = this.message;
    if (key === "html" || key === "source") return Boolean(m.HTML);
    if (key === "attachments") return (m.Attachments || []).length + (m.Inline || []).length > 0;
    if (key === "delivery") {
      // Shown while the trace loads when the relay is on (then nearly every message has one).
      if (!this.delivery) return this.hooks.relayOn();
      return this.delivery.attempts.length + this.delivery.queued.length > 0;
    }
    if (key === "envelope") return Boolean(m.Envelope);
    return true;
  }

  showTab(key, chosen = true) {
    if (chosen) this.tab = key;
    const redraw = this.current === key && key === "delivery";
    const scroll = this.panel.scrollTop;
    this.current = key;
    for (const [name, button] of Object.entries(this.tabButtons)) {
      button.classList.toggle("active", name === key);
      button.setAttribute("aria-selected", name === key ? "true" : "false");
    }
    clear(this.panel);
    this.panel.dataset.tab = key;
    const render = {
      html: () => this.renderHtml(),
      source: () => this.renderSource(),
      text: () => this.renderText(),
      headers: () => this.renderHeaders(),
      raw: () => this.renderRaw(),
      attachments: () => this.renderAttachments(),
      mime: () => this.renderMime(),
      envelope: () => this.renderEnvelope(),
      delivery: () => this.renderDelivery(),
      auth: () => this.panel.append(authTab(this.message)),
      checks: () => renderChecks(this.panel, this.message),
    }[key];
    render();
    if (redraw) this.panel.scrollTop = scroll; // a live refresh keeps the reader's place
  }

  // Fills the panel when an async load finishes, unless the user moved on meanwhile.
  later(promise, build) {
    const token = this.token;
    const tab = this.current;
    const slot = h("div", { class: "loading muted" }, "Loading…");
    this.panel.append(slot);
    promise.then(
      (value) => {
        if (token === this.token && tab === this.current) slot.replaceWith(build(value));
      },
      (error) => {
        if (token === this.token && tab === this.current) slot.replaceWith(h("p", { class: "muted" }, `Could not load: ${error.message}`));
      },
    );
  }

  renderHtml() {
    const id = this.message.ID;
    const remote = this.remoteAllowed.has(id);
    const bar = h("div", { class: "remote-bar", hidden: true });
    this.panel.append(bar);
    renderPreview(this.panel, api.previewUrl(id, remote), this.width, (width) => (this.width = width));
    if (remote) return;
    const token = this.token;
    api.getPreviewInfo(id).then(
      (info) => {
        if (token !== this.token || !info.RemoteBlocked) return;
        const hosts = (info.RemoteHosts || []).join(", ");
        bar.append(
          icon("shield"),
          h(
            "span",
            { class: "remote-note" },
            h("span", { class: "remote-count" }, `${info.RemoteBlocked} remote resource${info.RemoteBlocked === 1 ? "" : "s"} blocked`),
            hosts ? h("span", { class: "muted small hosts", title: hosts }, ` from ${hosts}`) : null,
          ),
          h(
            "button",
            {
              type: "button",
              class: "button",
              onclick: () => {
                this.remoteAllowed.add(id);
                this.showTab("html");
              },
            },
            "Load remote content",
          ),
        );
        bar.hidden = false;
      },
      () => {},
    );
  }

  renderSource() {
    const html = this.message.HTML || "";
    const box = h("div", { class: "raw" });
    if (html.length > HIGHLIGHT_LIMIT) {
      box.append(h("p", { class: "muted pad" }, `${size(html.length)} of HTML: shown without colours.`));
      box.append(h("pre", { class: "source-body" }, html.length > RAW_LIMIT ? html.slice(0, RAW_LIMIT) : html));
    } else {
      box.append(highlightHtml(html));
    }
    this.panel.append(box);
  }

  renderText() {
    const text = this.message.Text;
    this.panel.append(text ? h("pre", { class: "text-body" }, text) : h("p", { class: "muted pad" }, "This message has no plain-text part."));
  }

  renderHeaders() {
    this.later(api.getHeaders(this.message.ID), (headers) => {
      const table = h("table", { class: "headers" });
      const rows = Array.isArray(headers) ? headers.map((x) => [x.Name || x[0], [x.Value || x[1]]]) : Object.entries(headers);
      for (const [name, values] of rows) {
        for (const value of [].concat(values)) table.append(h("tr", {}, h("th", {}, name), h("td", {}, value)));
      }
      return table;
    });
  }

  renderRaw() {
    this.later(api.getRaw(this.message.ID), (raw) => {
      const box = h("div", { class: "raw" });
      if (raw.length > RAW_LIMIT) {
        box.append(h("p", { class: "muted pad" }, `Showing the first ${size(RAW_LIMIT)}; download the .eml for all of it.`));
      }
      box.append(h("pre", { class: "raw-body" }, raw.length > RAW_LIMIT ? raw.slice(0, RAW_LIMIT) : raw));
      return box;
    });
  }

  renderAttachments() {
    const m = this.message;
    const items = [...(m.Attachments || []).map((a) => [a, false]), ...(m.Inline || []).map((a) => [a, true])];
    const grid = h("ul", { class: "attachments" });
    for (const [a, inline] of items) {
      const url = api.partUrl(m.ID, a.PartID);
      const name = a.FileName || `part-${a.PartID}`;
      const isImage = /^image\//i.test(a.ContentType || "");
      grid.append(
        h(
          "li",
          { class: "attachment" },
          isImage ? h("a", { href: url, target: "_blank", rel: "noopener", class: "thumb" }, thumbImg(m.ID, a.PartID, url, name)) : h("div", { class: "thumb file" }, icon("clip")),
          h("div", { class: "attachment-name", title: name }, name),
          h("div", { class: "muted small" }, `${a.ContentType || "application/octet-stream"} · ${size(a.Size)}${inline ? " · inline" : ""}`),
          h("a", { class: "button small", href: url, download: name }, icon("download"), " Download"),
        ),
      );
    }
    this.panel.append(grid);
  }

  renderMime() {
    const node = (part) => {
      const children = part.Parts || part.Children || [];
      return h(
        "li",
        {},
        h(
          "div",
          { class: "mime-part" },
          h("code", {}, part.ContentType),
          part.PartID ? h("span", { class: "muted small" }, ` part ${part.PartID}`) : null,
          part.FileName ? h("span", { class: "small" }, ` · ${part.FileName}`) : null,
          part.ContentID ? h("span", { class: "muted small" }, ` · cid:${part.ContentID}`) : null,
          part.Disposition ? h("span", { class: "muted small" }, ` · ${part.Disposition}`) : null,
          children.length ? null : h("span", { class: "muted small" }, ` · ${size(part.Size)}`),
        ),
        children.length ? h("ul", {}, children.map(node)) : null,
      );
    };
    const tree = this.message.Structure;
    this.panel.append(tree ? h("ul", { class: "tree" }, node(tree)) : h("p", { class: "muted pad" }, "No structure."));
  }

  renderEnvelope() {
    const m = this.message;
    const env = m.Envelope;
    const inHeaders = new Map();
    // Bcc lists envelope-only recipients too (as Mailpit's does): only To and Cc name a recipient.
    for (const [label, list] of [["To", m.To], ["Cc", m.Cc]]) {
      for (const a of list || []) inHeaders.set((a.Address || "").toLowerCase(), label);
    }
    const rcpts = h("ul", { class: "rcpts" });
    for (const rcpt of env.RcptTo || []) {
      const label = inHeaders.get(rcpt.toLowerCase());
      rcpts.append(
        h(
          "li",
          {},
          h("span", {}, rcpt),
          " ",
          h("span", { class: `tag ${label ? "" : "bcc"}` }, label || "Bcc (envelope only)"),
        ),
      );
    }
    const yes = (v) => h("span", { class: `tag ${v ? "ok" : "warn"}` }, v ? "yes" : "no");
    const dl = h(
      "dl",
      { class: "meta envelope" },
      h("dt", {}, "MAIL FROM"),
      h("dd", {}, env.MailFrom || "<> (null sender)"),
      h("dt", {}, "RCPT TO"),
      h("dd", {}, rcpts),
      h("dt", {}, "Delivered to"),
      h("dd", {}, (m.Mailboxes || []).join(", ") || "—"),
      h("dt", {}, "Client"),
      h("dd", {}, env.Peer || "—"),
      h("dt", {}, "HELO/EHLO"),
      h("dd", {}, env.Helo || "—"),
      h("dt", {}, "TLS"),
      h("dd", {}, yes(env.TLS)),
      h("dt", {}, "AUTH"),
      h("dd", {}, env.Auth ? h("span", { class: "tag ok" }, env.Auth) : yes(false)),
    );
    if ("SMTPUTF8" in env) dl.append(h("dt", {}, "SMTPUTF8"), h("dd", {}, yes(env.SMTPUTF8)));
    this.panel.append(dl);
  }

  renderDelivery() {
    if (!this.delivery) {
      this.panel.append(h("div", { class: "loading muted" }, "Loading…"));
      return;
    }
    this.panel.append(
      renderDelivery(this.delivery, {
        expanded: this.expanded,
        onRetry: (recipient) => this.queueAction(recipient, false),
        onDrop: (recipient) => this.queueAction(recipient, true),
      }),
    );
  }
}

// An image attachment's 180x120 thumbnail; the part itself if the server has no thumbnail for it.
function thumbImg(id, part, url, name) {
  const img = h("img", { src: api.thumbUrl(id, part), alt: name, loading: "lazy" });
  img.addEventListener("error", () => img.getAttribute("src") !== url && img.setAttribute("src", url), { once: true });
  return img;
}

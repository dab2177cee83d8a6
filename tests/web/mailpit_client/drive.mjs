// Drives every method of the npm `mailpit-api` client against a running sandbox and prints one JSON
// object: method name -> {ok, error}. Each method's check asserts the types the client declares
// (dist/index.d.mts) and the effect Mailpit documents. Usage: node drive.mjs BASE_URL CONTEXT_JSON
import { MailpitClient } from "mailpit-api";

const [base, contextJson] = process.argv.slice(2);
const ctx = JSON.parse(contextJson); // {ids: {subject: ID}, releaseTo: address, corpus: count}
const mailpit = new MailpitClient(base);

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

// The declared shapes, as {field: type}; "address" and "addresses" are MailpitEmailAddressResponse (lists).
const ADDRESS = { Address: "string", Name: "string" };
const ATTACHMENT = { ContentID: "string", ContentType: "string", FileName: "string", PartID: "string", Size: "number" };
const LIST_ITEM = {
  Attachments: "number", Bcc: "addresses", Cc: "addresses", Created: "string", From: "address", ID: "string",
  MessageID: "string", Read: "boolean", ReplyTo: "addresses", Size: "number", Snippet: "string",
  Subject: "string", Tags: "strings", To: "addresses",
};
const SUMMARY = {
  messages: "list", messages_count: "number", messages_unread: "number", start: "number", tags: "strings",
  total: "number", unread: "number", count: "number",
};
const MESSAGE = {
  Attachments: "attachments", Bcc: "addresses", Cc: "addresses", Date: "string", From: "address", HTML: "string",
  ID: "string", Inline: "attachments", ListUnsubscribe: "object", MessageID: "string", ReplyTo: "addresses",
  ReturnPath: "string", Size: "number", Subject: "string", Tags: "strings", Text: "string", To: "addresses",
};

function typed(value, shape, where) {
  check(value !== null && typeof value === "object", `${where} is an object`);
  for (const [field, kind] of Object.entries(shape)) {
    const v = value[field];
    const at = `${where}.${field}`;
    if (kind === "address") typed(v, ADDRESS, at);
    else if (kind === "addresses") {
      check(Array.isArray(v), `${at} is an array`);
      v.forEach((a, i) => typed(a, ADDRESS, `${at}[${i}]`));
    } else if (kind === "attachments") {
      check(Array.isArray(v), `${at} is an array`);
      v.forEach((a, i) => {
        typed(a, ATTACHMENT, `${at}[${i}]`);
        typed(a.Checksums, { MD5: "string", SHA1: "string", SHA256: "string" }, `${at}[${i}].Checksums`);
      });
    } else if (kind === "strings") {
      check(Array.isArray(v) && v.every((s) => typeof s === "string"), `${at} is a string[]`);
    } else if (kind === "list") check(Array.isArray(v), `${at} is an array`);
    else check(typeof v === kind, `${at} is a ${kind} (got ${JSON.stringify(v)?.slice(0, 80)})`);
  }
}

function summaryTyped(s, where) {
  typed(s, SUMMARY, where);
  s.messages.forEach((m, i) => typed(m, LIST_ITEM, `${where}.messages[${i}]`));
}

const id = (subject) => {
  const found = ctx.ids[subject];
  check(found, `the corpus has "${subject}"`);
  return found;
};
const readState = async () => {
  const all = await mailpit.listMessages(0, 1000);
  return Object.fromEntries(all.messages.map((m) => [m.Subject, m.Read]));
};

const NEWS = "Newsletter für Ännchen ✉";
const checks = {
  async getInfo() {
    const info = await mailpit.getInfo();
    typed(info, { Database: "string", DatabaseSize: "number", LatestVersion: "string", Messages: "number",
      RuntimeStats: "object", Tags: "object", Unread: "number", Version: "string" }, "info");
    typed(info.RuntimeStats, { MessagesDeleted: "number", SMTPAccepted: "number", SMTPAcceptedSize: "number",
      SMTPIgnored: "number", SMTPRejected: "number", Uptime: "number" }, "info.RuntimeStats");
    check(info.Messages === ctx.corpus, `Messages is the corpus (${info.Messages})`);
  },
  async getConfiguration() {
    const config = await mailpit.getConfiguration();
    typed(config, { ChaosEnabled: "boolean", DuplicatesIgnored: "boolean", HideDeleteAllButton: "boolean",
      Label: "string", MessageRelay: "object", SpamAssassin: "boolean" }, "webui");
  },
  async getMessageSummary() {
    const before = await readState();
    check(before[NEWS] === false, "the newsletter starts unread");
    const m = await mailpit.getMessageSummary(id(NEWS));
    typed(m, MESSAGE, "message");
    check(m.Subject === NEWS, `UTF-8 subject (${m.Subject})`);
    check(m.Cc.map((a) => a.Address).join() === "cc-person@example.test", "Cc listed");
    check(m.Inline.length === 1 && m.Inline[0].ContentID === "logo@news", "the cid: image is Inline");
    check(m.ListUnsubscribe.Links.includes("https://news.example.test/unsubscribe?u=1"), "List-Unsubscribe links");
    check((await readState())[NEWS] === true, "reading it marks it read (Mailpit)");
    const latest = await mailpit.getMessageSummary();
    typed(latest, MESSAGE, "latest");
  },
  async getMessageHeaders() {
    const headers = await mailpit.getMessageHeaders(id(NEWS));
    for (const [k, v] of Object.entries(headers)) check(Array.isArray(v) && v.every((s) => typeof s === "string"), `${k}: string[]`);
    check(headers.Subject?.length === 1, "Subject is there");
    check(Array.isArray(headers["Message-Id"]) && Array.isArray(headers["Mime-Version"]), "Mailpit's canonical keys");
  },
  async getMessageAttachment() {
    const m = await mailpit.getMessageSummary(id("Several attachments"));
    const names = m.Attachments.map((a) => a.FileName).sort();
    check(JSON.stringify(names) === JSON.stringify(["forwarded.eml", "notes.txt", "report.pdf"]),
      `every attachment listed, the attached message too (${names})`);
    for (const a of m.Attachments) {
      const blob = await mailpit.getMessageAttachment(m.ID, a.PartID);
      check(blob instanceof Blob && blob.size === a.Size, `${a.FileName}: a Blob of Size octets (${blob.size} vs ${a.Size})`);
      check(blob.type.split(";")[0] === a.ContentType, `${a.FileName}: type ${blob.type}`);
    }
  },
  async getAttachmentThumbnail() {
    const m = await mailpit.getMessageSummary(id(NEWS));
    const blob = await mailpit.getAttachmentThumbnail(m.ID, m.Inline[0].PartID);
    check(blob.type === "image/jpeg", "a JPEG thumbnail");
  },
  async getMessageSource() {
    const source = await mailpit.getMessageSource(id("Plain hello"));
    check(typeof source === "string" && source.includes("Subject: Plain hello"), "the raw message");
    check((await mailpit.getMessageSource()).includes("Subject:"), "latest");
  },
  async releaseMessage() {
    const answer = await mailpit.releaseMessage(id("Plain hello"), { To: [ctx.releaseTo] });
    check(answer === "ok", `plain-text ok (${answer})`);
  },
  async sendMessage() {
    const sent = await mailpit.sendMessage({ From: { Email: "api@example.test" }, To: [{ Email: "to@example.test" }],
      Subject: "Sent through the API" });
    check(typeof sent.ID === "string", "an ID");
    const stored = await mailpit.getMessageSummary(sent.ID);
    check(stored.Subject === "Sent through the API" && stored.To[0].Address === "to@example.test", "stored as sent");
    check((await mailpit.deleteMessages({ IDs: [sent.ID] })) === "ok", "and deleted again: the corpus stays as it was");
  },
  async listMessages() {
    const page = await mailpit.listMessages(1, 2);
    summaryTyped(page, "list");
    check(page.messages.length === 2 && page.count === 2 && page.start === 1, "start and limit");
    check(page.total === ctx.corpus && page.messages_count === ctx.corpus, "total and messages_count: the store");
  },
  async setReadStatus() {
    check((await mailpit.setReadStatus({ Read: true })) === "ok", "all read: ok");
    check(Object.values(await readState()).every((r) => r), "everything read");
    check((await mailpit.setReadStatus({ Search: "subject:Several" })) === "ok", "by search: ok");
    const state = await readState();
    check(state["Several attachments"] === false, "the match is unread (Read defaults to false)");
    check(Object.entries(state).every(([s, r]) => s === "Several attachments" || r), "nothing else changed");
    const tz = await mailpit.setReadStatus({ Search: "after:2000-01-01", Read: true }, { tz: "America/Chicago" });
    check(tz === "ok" && Object.values(await readState()).every((r) => r), "by search with tz");
    await mailpit.setReadStatus({ IDs: [id("Plain hello")], Read: false });
    check((await readState())["Plain hello"] === false, "by IDs");
    let refused = false;
    try {
      await mailpit.setReadStatus({ IDs: [id("Plain hello")], Search: "hello", Read: true });
    } catch (error) {
      refused = /400/.test(error.message) && /not both/.test(error.message);
    }
    check(refused, "IDs and Search together are a 400");
    await mailpit.setReadStatus();
    check(Object.values(await readState()).every((r) => !r), "no arguments: all unread");
  },
  async searchMessages() {
    const cc = await mailpit.searchMessages({ query: "cc:cc-person@example.test" });
    summaryTyped(cc, "search");
    check(cc.messages_count === 1 && cc.messages[0].Subject === NEWS, "cc: matches the Cc field only");
    check(cc.total === ctx.corpus, "total is the whole store");
    const bcc = await mailpit.searchMessages({ query: "bcc:secret@example.test" });
    check(bcc.messages_count === 1 && bcc.messages[0].Subject === "Plain hello", "bcc: an envelope-only recipient");
    const inline = await mailpit.searchMessages({ query: "has:inline" });
    check(inline.messages_count === 1, "has:inline");
    const paged = await mailpit.searchMessages({ query: "example", start: 1, limit: 1, tz: "Europe/Paris" });
    check(paged.start === 1 && paged.messages.length === 1, "start, limit and tz");
    let refused = false;
    try {
      await mailpit.searchMessages({ query: "is:foo" });
    } catch (error) {
      refused = /400/.test(error.message) && /is:foo/.test(error.message);
    }
    check(refused, "an unknown filter is a 400 that names it");
  },
  async waitForMessage() {
    const m = await mailpit.waitForMessage({ query: "subject:Plain" }, { timeout: 3000, interval: 100 });
    typed(m, MESSAGE, "waited");
    check(m.Subject === "Plain hello", "the matching message");
  },
  async waitForMessages() {
    const found = await mailpit.waitForMessages({ query: "from:sender@example.test", count: 2 }, { timeout: 3000, interval: 100 });
    summaryTyped(found, "waited");
    check(found.messages_count >= 2, "at least two");
    const exact = await mailpit.waitForMessages({ count: ctx.corpus, exact: true }, { timeout: 3000, interval: 100 });
    check(exact.messages_count === ctx.corpus, "the listing, exactly");
  },
  async htmlCheck() {
    const result = await mailpit.htmlCheck(id(NEWS));
    typed(result, { Platforms: "object", Total: "object", Warnings: "list" }, "html-check");
  },
  async linkCheck() {
    const result = await mailpit.linkCheck(id(NEWS));
    typed(result, { Errors: "number", Links: "list" }, "link-check");
  },
  async spamAssassinCheck() {
    const result = await mailpit.spamAssassinCheck(id(NEWS));
    typed(result, { Error: "string", IsSpam: "boolean", Rules: "list", Score: "number" }, "sa-check");
  },
  async getTags() {
    await mailpit.setTags({ IDs: [id(NEWS)], Tags: ["Listed", "alpha"] });
    const tags = await mailpit.getTags();
    check(JSON.stringify(tags) === '["alpha","Listed"]', `every tag, sorted: ${JSON.stringify(tags)}`);
  },
  async setTags() {
    check((await mailpit.setTags({ IDs: [id(NEWS)], Tags: ["news", "Dirty! tag"] })) === "ok", "ok");
    check((await mailpit.searchMessages({ query: "tag:news" })).messages_count === 1, "tag: finds it");
    const tags = (await mailpit.getMessageSummary(id(NEWS))).Tags;
    check(JSON.stringify(tags) === '["Dirty tag","news"]', `replaced and cleaned: ${JSON.stringify(tags)}`);
  },
  async renameTag() {
    await mailpit.setTags({ IDs: [id(NEWS)], Tags: ["old"] });
    check((await mailpit.renameTag("old", "new")) === "ok", "ok");
    const tags = await mailpit.getTags();
    check(tags.includes("new") && !tags.includes("old"), `renamed: ${JSON.stringify(tags)}`);
  },
  async deleteTag() {
    await mailpit.setTags({ IDs: [id(NEWS)], Tags: ["gone"] });
    check((await mailpit.deleteTag("gone")) === "ok", "ok");
    check(!(await mailpit.getTags()).includes("gone"), "off every message");
    check((await mailpit.getMessageSummary(id(NEWS))).Tags.length === 0, "the message stays, untagged");
  },
  async getChaosTriggers() {
    typed(await mailpit.getChaosTriggers(), { Authentication: "object", Recipient: "object", Sender: "object" }, "chaos");
  },
  async setChaosTriggers() {
    const shape = { Authentication: "object", Recipient: "object", Sender: "object" };
    // Probability 0: the trigger is set and echoed, and the other methods' SMTP is not failed meanwhile.
    const set = await mailpit.setChaosTriggers({ Sender: { ErrorCode: 452, Probability: 0 } });
    typed(set, shape, "chaos");
    check(set.Sender.ErrorCode === 452 && set.Recipient.ErrorCode === 451, `Sender set, Recipient default (${JSON.stringify(set)})`);
    check((await mailpit.getChaosTriggers()).Sender.ErrorCode === 452, "read back");
    const reset = await mailpit.setChaosTriggers();
    typed(reset, shape, "chaos");
    check(reset.Sender.ErrorCode === 451 && reset.Authentication.ErrorCode === 535, "{} puts the defaults back");
  },
  async renderMessageHTML() {
    const html = await mailpit.renderMessageHTML(id(NEWS));
    check(html.includes("/part/") && !html.includes("cid:logo@news"), "cid: images point at their parts");
    const embedded = await mailpit.renderMessageHTML(id(NEWS), 1);
    check(embedded.includes('rel="noreferrer noopener"') && embedded.includes('target="_blank"'), "embed=1 links");
  },
  async renderMessageText() {
    const text = await mailpit.renderMessageText(id("Plain hello"));
    check(text.includes("Hello from the plain message"), "the text part");
  },
  async deleteMessagesBySearch() {
    const before = Object.keys(await readState()).length;
    check((await mailpit.deleteMessagesBySearch({ query: "subject:Disposable" })) === "ok", "ok");
    const after = await readState();
    check(Object.keys(after).length === before - 1 && !("Disposable" in after), "only the match is gone");
    let refused = false;
    try {
      await mailpit.deleteMessagesBySearch({ query: "is:tagged has:nothing" });
    } catch (error) {
      refused = /400/.test(error.message);
    }
    check(refused && Object.keys(await readState()).length === before - 1, "a bad query deletes nothing");
  },
  async deleteMessages() {
    const before = Object.keys(await readState()).length;
    check((await mailpit.deleteMessages({ IDs: [id("Plain hello")] })) === "ok", "ok");
    check(Object.keys(await readState()).length === before - 1, "one gone");
    check((await mailpit.deleteMessages()) === "ok", "all: ok");
    check((await mailpit.listMessages()).total === 0, "all gone");
  },
};

const results = {};
for (const [name, run] of Object.entries(checks)) {
  try {
    await run();
    results[name] = { ok: true, error: "" };
  } catch (error) {
    results[name] = { ok: false, error: String(error?.message ?? error).slice(0, 600) };
  }
}
// Every method of the client has a check here: a new version's methods show up as missing.
const methods = Object.getOwnPropertyNames(MailpitClient.prototype).filter((n) => n !== "constructor" && n !== "request");
results.__missing__ = methods.filter((n) => !(n in checks));
console.log(JSON.stringify(results));

// The Authentication tab: SPF, DKIM, DMARC and ARC as the sandbox checked them on arrival (RFC 8601 words).
import * as api from "./api.js";
import { h } from "./dom.js";

// pass is good news, fail/permerror bad, the rest (softfail, neutral, none, temperror) a warning.
const tone = (result) => (result === "pass" ? "ok" : result === "fail" || result === "permerror" ? "bad" : "warn");
const badge = (result) => h("span", { class: `tag ${tone(result)}` }, result || "none");

function row(method, result, about, reason) {
  return h(
    "tr",
    {},
    h("th", {}, method),
    h("td", {}, badge(result)),
    h("td", {}, about || "—"),
    h("td", { class: "muted" }, reason || ""),
  );
}

/** Builds the tab from GET /api/sandbox/message/{ID}/auth; every value goes in as text, never markup. */
export function renderAuth(auth) {
  const spf = auth.SPF || {};
  const dmarc = auth.DMARC || {};
  const arc = auth.ARC || {};
  const body = h("tbody", {});
  const spfAbout = [spf.Domain, spf.ClientIP && `client ${spf.ClientIP}`].filter(Boolean).join(" · ");
  body.append(row("SPF", spf.Result, spfAbout, spf.Reason));
  const signatures = auth.DKIM || [];
  if (!signatures.length) body.append(row("DKIM", "none", "", "the message has no DKIM signature"));
  for (const sig of signatures) {
    body.append(row("DKIM", sig.Result, [sig.Domain && `d=${sig.Domain}`, sig.Selector && `s=${sig.Selector}`].filter(Boolean).join(" "), sig.Reason));
  }
  const dmarcAbout = [dmarc.Domain, dmarc.Policy && `p=${dmarc.Policy}`].filter(Boolean).join(" · ");
  body.append(row("DMARC", dmarc.Result, dmarcAbout, dmarc.Reason));
  body.append(row("ARC", arc.Result, "", arc.Reason));
  return h(
    "div",
    { class: "auth pad" },
    h("table", { class: "headers auth-results" }, h("thead", {}, h("tr", {}, h("th", {}, "Check"), h("th", {}, "Result"), h("th", {}, "For"), h("th", {}, "Why"))), body),
    h("h3", { class: "small muted" }, "Authentication-Results"),
    h("pre", { class: "raw-body auth-header" }, `Authentication-Results: ${auth.AuthenticationResults || ""}`),
  );
}

/**
 * The tab's content for a message: its results as captured, and, for each mailbox it reached, the copy
 * that mailbox received (a relay's hops may have signed, sealed or rewritten it).
 */
export function authTab(message) {
  const body = h("div", {});
  const load = (mailbox) => {
    body.replaceChildren(h("div", { class: "loading muted" }, "Loading…"));
    api.getAuth(message.ID, mailbox).then(
      (auth) => body.replaceChildren(renderAuth(auth)),
      (error) => body.replaceChildren(h("p", { class: "muted pad" }, `Could not load: ${error.message}`)),
    );
  };
  const mailboxes = message.Mailboxes || [];
  const root = h("div", {});
  if (mailboxes.length) {
    const select = h(
      "select",
      { class: "auth-copy", "aria-label": "Which copy", onchange: () => load(select.value || undefined) },
      h("option", { value: "" }, "As captured"),
      mailboxes.map((mailbox) => h("option", { value: mailbox }, `As delivered to ${mailbox}`)),
    );
    root.append(h("div", { class: "pad auth-choice" }, select));
  }
  root.append(body);
  load(undefined);
  return root;
}

// The Checks tab: HTML compatibility per client family (with the offending source lines), links, spam score.
import { getJSON, enc } from "./api.js";
import { h } from "./dom.js";

const pct = (n) => `${Math.round(n)}%`;

function reason(error) {
  try {
    return JSON.parse(error.message).Error || error.message;
  } catch {
    return error.message;
  }
}

// Each family, with the features it lacks or supports in part, worst first.
function byFamily(result) {
  const families = new Map();
  for (const warning of result.Warnings) {
    const seen = new Map();
    for (const r of warning.Results) {
      if (r.Support === "yes") continue;
      const entry = seen.get(r.Family) || { no: [], partial: [] };
      entry[r.Support === "no" ? "no" : "partial"].push(r.Name);
      seen.set(r.Family, entry);
    }
    if (warning.Slug === "html-script") seen.set("every client", { no: ["every client"], partial: [] });
    for (const [family, entry] of seen) {
      if (!families.has(family)) families.set(family, []);
      families.get(family).push({ warning, ...entry });
    }
  }
  return [...families.entries()].sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]));
}

function places(warning) {
  const list = h("ul", { class: "check-places" });
  for (const place of warning.Places || []) {
    // The source as the sender wrote it: a text node, never markup.
    list.append(h("li", {}, h("span", { class: "muted small" }, `line ${place.Line}: `), h("code", {}, place.Text)));
  }
  return list;
}

function htmlSection(result) {
  const t = result.Total;
  const section = h(
    "section",
    { class: "check", dataset: { check: "html" } },
    h("h2", {}, "HTML compatibility"),
    h(
      "p",
      { class: "check-total" },
      h("strong", {}, `${pct(t.Supported)} supported`),
      `, ${pct(t.Partial)} partially, ${pct(t.Unsupported)} not supported, over ${t.Nodes} elements. `,
      h("span", { class: "muted small" }, "Support data: caniemail.com"),
    ),
  );
  if (!result.Warnings.length) section.append(h("p", { class: "muted" }, "No feature with uneven support found."));
  for (const [family, items] of byFamily(result)) {
    const details = h("details", { class: "check-family", dataset: { family } });
    details.append(h("summary", {}, h("strong", {}, family === "every client" ? "Every client" : (result.Families || {})[family] || family), ` — ${items.length} feature${items.length === 1 ? "" : "s"}`));
    const list = h("ul", {});
    for (const item of items) {
      const w = item.warning;
      const where = [
        item.no.length ? `not supported in ${item.no.join(", ")}` : "",
        item.partial.length ? `partly in ${item.partial.join(", ")}` : "",
      ].filter(Boolean);
      list.append(
        h(
          "li",
          { dataset: { slug: w.Slug } },
          w.URL ? h("a", { href: w.URL, target: "_blank", rel: "noopener noreferrer" }, w.Title) : h("span", {}, w.Title),
          h("span", { class: "muted small" }, ` (${w.Score.Found}×): ${where.join("; ")}`),
          places(w),
        ),
      );
    }
    details.append(list);
    section.append(details);
  }
  return section;
}

function linkSection(id) {
  const follow = h("input", { type: "checkbox" });
  const out = h("div", {});
  const run = async () => {
    out.replaceChildren(h("p", { class: "muted" }, "Checking…"));
    try {
      const result = await getJSON(`/api/v1/message/${enc(id)}/link-check${follow.checked ? "?follow=true" : ""}`);
      const table = h("table", { class: "headers check-links" });
      for (const link of result.Links) {
        const bad = link.StatusCode >= 400 || link.StatusCode === 0;
        table.append(h("tr", { class: bad ? "bad" : null }, h("th", {}, String(link.StatusCode || "—")), h("td", {}, link.Status), h("td", {}, link.URL)));
      }
      out.replaceChildren(h("p", {}, `${result.Links.length} links, ${result.Errors} with errors`), table);
    } catch (error) {
      out.replaceChildren(h("p", { class: "muted" }, reason(error)));
    }
  };
  return h(
    "section",
    { class: "check", dataset: { check: "links" } },
    h("h2", {}, "Links"),
    h("p", {}, h("button", { type: "button", class: "button small", onclick: run }, "Check links"), " ", h("label", { class: "small" }, follow, " follow redirects")),
    out,
  );
}

function spamSection(id) {
  const out = h("div", {}, h("p", { class: "muted" }, "Asking SpamAssassin…"));
  getJSON(`/api/v1/message/${enc(id)}/sa-check`).then(
    (result) => {
      if (result.Error) return out.replaceChildren(h("p", { class: "muted" }, result.Error));
      const table = h("table", { class: "headers check-rules" });
      for (const rule of result.Rules || []) table.append(h("tr", {}, h("th", {}, rule.Score.toFixed(1)), h("td", {}, rule.Name), h("td", {}, rule.Description)));
      out.replaceChildren(h("p", { class: "check-total" }, h("strong", {}, `Score ${result.Score.toFixed(1)}`), result.IsSpam ? " — spam" : " — not spam"), table);
    },
    (error) => out.replaceChildren(h("p", { class: "muted" }, reason(error))),
  );
  return h("section", { class: "check", dataset: { check: "spam" } }, h("h2", {}, "Spam score"), out);
}

/** Fills `panel` with the checks of `message` (each section loads on its own). */
export function renderChecks(panel, message) {
  const box = h("div", { class: "checks pad" });
  panel.append(box);
  if (message.HTML) {
    const slot = h("div", {}, h("p", { class: "muted" }, "Checking the HTML…"));
    box.append(slot);
    getJSON(`/api/sandbox/message/${enc(message.ID)}/html-check`).then(
      (result) => slot.replaceWith(htmlSection(result)),
      (error) => slot.replaceWith(h("p", { class: "muted" }, reason(error))),
    );
  } else {
    box.append(h("section", { class: "check" }, h("h2", {}, "HTML compatibility"), h("p", { class: "muted" }, "This message has no HTML part.")));
  }
  box.append(linkSection(message.ID), spamSection(message.ID));
}

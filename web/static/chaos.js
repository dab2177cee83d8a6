// The Chaos panel: view and set Mailpit's triggers, our rules and the rate limits (/api/sandbox/chaos).
// Shown only when the sandbox runs with chaos enabled. Every value lands in a form field or a text node.
import { ApiError } from "./api.js";
import { h, clear } from "./dom.js";

const URL_ = "/api/sandbox/chaos";
const TRIGGERS = ["Sender", "Recipient", "Authentication"];

async function call(method, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(URL_, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.Error || response.statusText);
  return data;
}

/** A rule as a --chaos-rule line; one with its own Text stays a JSON line (the line syntax has no text). */
export function ruleLine(rule) {
  if (rule.Text) return JSON.stringify(rule);
  let line = rule.Stage + (rule.ErrorCode ? `:${rule.ErrorCode}` : "");
  if (rule.Every > 1) line += ` every=${rule.Every}`;
  if (rule.Sender) line += ` from=${rule.Sender}`;
  if (rule.Recipient) line += ` to=${rule.Recipient}`;
  if (rule.Probability !== undefined && rule.Probability < 100) line += ` p=${rule.Probability}`;
  if (rule.Delay) line += ` delay=${rule.Delay}`;
  return line;
}

function parseLines(text) {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"))
    .map((line) => (line.startsWith("{") ? JSON.parse(line) : line));
}

function numberField(name, value, min, max, label) {
  return h("input", { type: "number", name, value: String(value ?? 0), min: String(min), max: String(max),
    "aria-label": label, class: "chaos-number" });
}

class ChaosPanel {
  constructor() {
    this.section = document.getElementById("chaos-section");
    this.dialog = document.getElementById("chaos-dialog");
    this.form = document.getElementById("chaos-form");
    this.status = document.getElementById("chaos-status");
    if (!this.section || !this.dialog || !this.form) return;
    document.getElementById("chaos-button").addEventListener("click", () => this.open());
    document.getElementById("chaos-off").addEventListener("click", () => this.save("DELETE"));
    this.form.addEventListener("submit", (event) => {
      if (event.submitter && event.submitter.id !== "chaos-save") return; // Close: the dialog's own way
      event.preventDefault();
      this.save("PUT");
    });
    this.refresh();
  }

  async refresh() {
    try {
      this.state = await call("GET");
    } catch {
      return;
    }
    this.section.hidden = !this.state.Enabled;
    const count = this.state.Rules.length + TRIGGERS.filter((t) => this.state.Triggers[t].Probability > 0).length
      + (this.state.RateLimit.Messages || this.state.RateLimit.Connections ? 1 : 0);
    document.getElementById("chaos-count").textContent = count ? String(count) : "";
  }

  async open() {
    await this.refresh();
    if (!this.state) return;
    this.render();
    this.say("");
    this.dialog.showModal();
  }

  render() {
    const s = this.state;
    const rows = document.getElementById("chaos-triggers");
    clear(rows);
    for (const name of TRIGGERS) {
      rows.append(h("tr", {}, h("th", { scope: "row" }, name),
        h("td", {}, numberField(`${name}-code`, s.Triggers[name].ErrorCode, 400, 599, `${name} error code`)),
        h("td", {}, numberField(`${name}-p`, s.Triggers[name].Probability, 0, 100, `${name} probability`), " %")));
    }
    this.form.elements.rules.value = s.Rules.map(ruleLine).join("\n");
    this.form.elements.messages.value = String(s.RateLimit.Messages);
    this.form.elements.connections.value = String(s.RateLimit.Connections);
    document.getElementById("chaos-stages").textContent = s.Stages.join(", ");
  }

  body() {
    const f = this.form.elements;
    const triggers = {};
    for (const name of TRIGGERS) {
      triggers[name] = { ErrorCode: Number(f[`${name}-code`].value), Probability: Number(f[`${name}-p`].value) };
    }
    return { Triggers: triggers, Rules: parseLines(f.rules.value),
      RateLimit: { Messages: Number(f.messages.value), Connections: Number(f.connections.value) } };
  }

  async save(method) {
    let body;
    try {
      body = method === "PUT" ? this.body() : undefined;
    } catch (err) {
      this.say(`A rule line is not valid JSON: ${err.message}`);
      return;
    }
    try {
      this.state = await call(method, body);
    } catch (err) {
      this.say(err.message);
      return;
    }
    this.render();
    this.refresh();
    this.say(method === "DELETE" ? "Chaos is off." : "Saved.");
  }

  say(text) {
    this.status.textContent = text;
  }
}

new ChaosPanel();

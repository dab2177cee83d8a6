// Browser notifications for new mail: off until the user turns them on (the toggle asks the browser for
// the permission); the choice is kept in localStorage. A burst of arrivals makes one notification a second
// at most: the ones in between are counted into the next.
const KEY = "mailsandbox.notify";
const GAP = 1000; // ms between two notifications

export class Notifier {
  constructor(button, hooks) {
    this.button = button; // hooks: {open(id), toast(text)}
    this.hooks = hooks;
    this.last = 0;
    this.pending = [];
    this.timer = 0;
    this.supported = "Notification" in window;
    button.hidden = !this.supported;
    button.addEventListener("click", () => this.toggle());
    this.render();
  }

  get on() {
    return this.supported && localStorage.getItem(KEY) === "1" && Notification.permission === "granted";
  }

  async toggle() {
    if (this.on) {
      localStorage.removeItem(KEY);
    } else {
      let permission = Notification.permission;
      if (permission === "default") permission = await Notification.requestPermission();
      if (permission === "granted") localStorage.setItem(KEY, "1");
      else this.hooks.toast("The browser blocks notifications for this page; allow them in its site settings.");
    }
    this.render();
  }

  render() {
    const on = this.on;
    this.button.classList.toggle("on", on);
    this.button.setAttribute("aria-pressed", on ? "true" : "false");
    this.button.title = on ? "Notifications on: click to turn off" : "Notify me of new mail";
  }

  /** A "new" event's summary. */
  arrived(summary) {
    if (!this.on) return;
    this.pending.push(summary);
    const wait = this.last + GAP - Date.now();
    if (wait <= 0) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), wait);
  }

  flush() {
    this.timer = 0;
    const batch = this.pending;
    this.pending = [];
    if (!batch.length || !this.on) return;
    this.last = Date.now();
    const m = batch[batch.length - 1];
    const from = m.From ? m.From.Name || m.From.Address : "";
    const title = batch.length === 1 ? m.Subject || "(no subject)" : `${batch.length} new messages`;
    const body = batch.length === 1 ? (from ? `From ${from}` : "") : `Latest: ${m.Subject || "(no subject)"}`;
    // The OS shows title and body as plain text; the tag makes a newer one replace an older one.
    const note = new Notification(title, { body, tag: "mailsandbox-new", icon: "/static/favicon.svg" });
    note.onclick = () => {
      window.focus();
      if (batch.length === 1) this.hooks.open(m.ID);
      note.close();
    };
  }
}

// Multi-select in the message list: a checkbox on each row (shift-click picks a range), a bar with bulk
// mark read, mark unread and delete for the checked messages, through Mailpit's PUT/DELETE /api/v1/messages.
import * as api from "./api.js";
import { h } from "./dom.js";

export class Selection {
  /**
   * els: {bar, count, all, read, unread, remove, clear};
   * hooks: {ids() -> the listed IDs in order, applyRead(ids, read), removed(ids), toast(text)}.
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    this.ids = new Set();
    this.anchor = null; // the last row clicked, for shift-click ranges
    els.all.addEventListener("change", () => this.setAll(els.all.checked));
    els.read.addEventListener("click", () => this.markRead(true));
    els.unread.addEventListener("click", () => this.markRead(false));
    els.remove.addEventListener("click", () => this.remove());
    els.clear.addEventListener("click", () => this.setAll(false));
  }

  /** The checkbox for one row. */
  box(id) {
    return h("input", {
      type: "checkbox",
      class: "pick",
      "aria-label": "Select",
      checked: this.ids.has(id),
      dataset: { id },
      onclick: (event) => {
        event.stopPropagation(); // ticking does not open the message
        this.pick(id, event.target.checked, event.shiftKey);
      },
    });
  }

  pick(id, on, range = false) {
    const listed = this.hooks.ids();
    let chosen = [id];
    if (range && this.anchor !== null) {
      const a = listed.indexOf(this.anchor);
      const b = listed.indexOf(id);
      if (a >= 0 && b >= 0) chosen = listed.slice(Math.min(a, b), Math.max(a, b) + 1);
    }
    for (const one of chosen) on ? this.ids.add(one) : this.ids.delete(one);
    this.anchor = id;
    this.render();
  }

  toggle(id) {
    if (id) this.pick(id, !this.ids.has(id));
  }

  setAll(on) {
    this.ids = new Set(on ? this.hooks.ids() : []);
    this.anchor = null;
    this.render();
  }

  /** After the list is redrawn: forget what is no longer listed, tick the boxes, show the bar. */
  sync() {
    const listed = new Set(this.hooks.ids());
    for (const id of this.ids) if (!listed.has(id)) this.ids.delete(id);
    this.render();
  }

  render() {
    const { bar, count, all } = this.els;
    for (const el of document.querySelectorAll("#messages input.pick")) {
      el.checked = this.ids.has(el.dataset.id);
      el.closest("li").classList.toggle("picked", el.checked);
    }
    const n = this.ids.size;
    const listed = this.hooks.ids().length;
    bar.hidden = n === 0;
    document.getElementById("messages").classList.toggle("picking", n > 0);
    count.textContent = `${n.toLocaleString()} selected`;
    all.checked = n > 0 && n === listed;
    all.indeterminate = n > 0 && n < listed;
    all.disabled = listed === 0;
  }

  async markRead(read) {
    const ids = [...this.ids];
    if (!ids.length) return;
    try {
      await api.setRead(ids, read);
    } catch (error) {
      this.hooks.toast(`Could not update: ${error.message}`);
      return;
    }
    this.hooks.applyRead(ids, read);
  }

  async remove() {
    const ids = [...this.ids];
    if (!ids.length) return;
    try {
      await api.deleteMessages(ids);
    } catch (error) {
      this.hooks.toast(`Could not delete: ${error.message}`);
      return;
    }
    this.ids.clear();
    this.hooks.removed(ids);
    this.render();
  }
}

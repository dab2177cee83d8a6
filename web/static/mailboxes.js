// The sidebar's mailbox list: natural order (user2 before user10) and a filter box once there are many.

const COLLATOR = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
const FILTER_FROM = 8; // mailboxes before the filter box appears

/** Mailboxes ({Mailbox, Total, Unread}) in natural order of their names; a new array. */
export function sortMailboxes(boxes) {
  return [...boxes].sort((a, b) => COLLATOR.compare(a.Mailbox, b.Mailbox) || (a.Mailbox < b.Mailbox ? -1 : 1));
}

export class MailboxFilter {
  constructor(input, list, none) {
    this.input = input;
    this.list = list;
    this.none = none;
    input.addEventListener("input", () => this.apply());
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && input.value) {
        event.stopPropagation();
        input.value = "";
        this.apply();
      }
    });
  }

  /** After the list is redrawn with `count` mailboxes. */
  update(count) {
    this.input.hidden = count < FILTER_FROM && !this.input.value;
    this.apply();
  }

  apply() {
    const needle = this.input.value.trim().toLowerCase();
    let shown = 0;
    for (const li of this.list.children) {
      const button = li.querySelector("[data-mailbox]");
      const name = button ? button.dataset.mailbox.toLowerCase() : "";
      const on = !needle || name.includes(needle);
      li.hidden = !on;
      if (on) shown += 1;
    }
    this.none.hidden = !needle || shown > 0;
  }
}

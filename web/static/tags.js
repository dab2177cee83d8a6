// Tags: chips in the list and the message view, the sidebar's list of tags, and editing a message's tags.
// Every name lands in a text node (dom.js's h), never in markup.
import * as api from "./api.js";
import { h, clear } from "./dom.js";

/** The search for one tag: quoted when it holds a space (Mailpit's tag:"Tag 1"). */
export function tagQuery(tag) {
  return /\s/.test(tag) ? `tag:"${tag}"` : `tag:${tag}`;
}

/** Chips for a message's tags; a click searches for the tag (and does not open the message under it). */
export function tagChips(tags, onPick) {
  if (!tags || !tags.length) return null;
  return h(
    "span",
    { class: "tags" },
    tags.map((tag) =>
      h(
        "button",
        {
          type: "button",
          class: "tag",
          title: `Show messages tagged ${tag}`,
          onclick: (event) => {
            event.stopPropagation();
            onPick(tag);
          },
        },
        tag,
      ),
    ),
  );
}

/** The sidebar's list of every tag in use; the one searched for is marked active. */
export function renderTagList(tags, activeQuery, onPick) {
  const ul = clear(document.getElementById("tags"));
  for (const tag of tags || []) {
    const active = activeQuery === tagQuery(tag);
    ul.append(
      h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: `mailbox tag-filter${active ? " active" : ""}`, dataset: { tag }, onclick: () => onPick(tag) },
          h("span", { class: "mailbox-name" }, tag),
        ),
      ),
    );
  }
  document.getElementById("tags-section").hidden = !(tags && tags.length);
}

/**
 * The message view's tag row: each tag with a remove button, and a field that adds one (Enter or comma).
 * `save(tags)` sets the message's whole list (Mailpit's PUT /api/v1/tags replaces).
 */
export function tagEditor(tags, { onPick, save }) {
  const box = h("div", { class: "tag-editor" });
  const current = [...(tags || [])];
  for (const tag of current) {
    box.append(
      h(
        "span",
        { class: "tag editable" },
        h("button", { type: "button", class: "tag-name", title: `Show messages tagged ${tag}`, onclick: () => onPick(tag) }, tag),
        h(
          "button",
          {
            type: "button",
            class: "tag-remove",
            "aria-label": `Remove tag ${tag}`,
            title: "Remove",
            onclick: () => save(current.filter((t) => t !== tag)),
          },
          "×",
        ),
      ),
    );
  }
  const input = h("input", {
    type: "text",
    class: "tag-input",
    placeholder: "Add tag",
    "aria-label": "Add a tag",
    maxlength: "100",
    spellcheck: "false",
  });
  const add = () => {
    const names = input.value.split(",").map((t) => t.trim()).filter(Boolean);
    if (names.length) save([...current, ...names]);
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === ",") {
      event.preventDefault();
      add();
    }
  });
  box.append(input);
  return box;
}

export const saveTags = (id, tags) => api.setTags([id], tags);

// The HTML tab's preview: a width switcher (phone, tablet, desktop), a loading state until the sandboxed
// iframe has loaded, and the frame itself. The mail's HTML only ever runs inside that frame, from /view/.
import { h } from "./dom.js";

export const WIDTHS = [
  ["phone", "Phone", 375],
  ["tablet", "Tablet", 768],
  ["desktop", "Desktop", 0], // 0: the whole pane
];

/**
 * Appends the switcher and the frame to `panel`. width: the chosen key; onWidth(key) when the user picks one.
 * Returns the iframe.
 */
export function renderPreview(panel, src, width, onWidth) {
  const frame = h("iframe", {
    class: "preview",
    title: "HTML preview",
    // No allow-scripts, no allow-same-origin, no allow-forms: the mail cannot run code or reach us.
    sandbox: "allow-popups allow-popups-to-escape-sandbox",
    referrerpolicy: "no-referrer",
    src,
  });
  const loading = h("div", { class: "preview-loading muted", role: "status" }, "Loading preview…");
  const stage = h("div", { class: "preview-stage", dataset: { width } }, frame, loading);
  frame.addEventListener("load", () => loading.remove(), { once: true });
  const buttons = WIDTHS.map(([key, label, px]) =>
    h(
      "button",
      {
        type: "button",
        class: `seg${key === width ? " active" : ""}`,
        dataset: { width: key },
        "aria-pressed": key === width ? "true" : "false",
        title: px ? `${label}: ${px} px wide` : `${label}: the full width`,
        onclick: () => {
          stage.dataset.width = key;
          setWidth(frame, key);
          for (const b of buttons) {
            const on = b.dataset.width === key;
            b.classList.toggle("active", on);
            b.setAttribute("aria-pressed", on ? "true" : "false");
          }
          onWidth(key);
        },
      },
      label,
    ),
  );
  setWidth(frame, width);
  panel.append(h("div", { class: "preview-bar", role: "group", "aria-label": "Preview width" }, buttons), stage);
  return frame;
}

function setWidth(frame, key) {
  const px = (WIDTHS.find(([k]) => k === key) || WIDTHS[2])[2];
  frame.style.width = px ? `${px}px` : "100%";
}

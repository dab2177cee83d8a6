// HTML source with colours: one pass over the text, each character looked at a bounded number of times
// (indexOf and the scans below only move forward), so hostile source costs linear time. Every token lands
// in a text node inside a <span>; nothing is ever parsed as markup.

// Character classes by code: whitespace (code <= 32), "/", "=", ">" and the letters that can open a tag.
const SPACE = 32;
const SLASH = 47;
const EQ = 61;
const GT = 62;
const isSpace = (c) => c <= SPACE;
const nameEnd = (c) => c <= SPACE || c === SLASH || c === GT;
const attrEnd = (c) => nameEnd(c) || c === EQ;
const opensTag = (c) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === SLASH || c === 33 || c === 63;

function span(cls, text) {
  const el = document.createElement("span");
  el.className = cls;
  el.textContent = text;
  return el;
}

/** Calls emit(class, start, end) for each token of `src`, in order; class "" is plain text. */
export function scan(src, emit) {
  const n = src.length;
  let i = 0;
  const until = (stop, from) => {
    const at = src.indexOf(stop, from);
    return at < 0 ? n : at + stop.length;
  };
  while (i < n) {
    const lt = src.indexOf("<", i);
    if (lt < 0) {
      emit("", i, n);
      break;
    }
    if (lt > i) emit("", i, lt);
    i = lt;
    if (src.startsWith("<!--", i)) {
      const end = until("-->", i + 4);
      emit("hl-comment", i, end);
      i = end;
      continue;
    }
    if (!opensTag(src.charCodeAt(i + 1))) {
      emit("", i, i + 1);
      i += 1;
      continue;
    }
    // "<name" or "</name" or "<!doctype"
    let j = i + 1;
    while (j < n && !nameEnd(src.charCodeAt(j))) j += 1;
    if (j === i + 1 && src.charCodeAt(j) === SLASH) j += 1; // "</" then the name
    while (j < n && !nameEnd(src.charCodeAt(j))) j += 1;
    emit("hl-tag", i, j);
    i = j;
    // attributes up to ">"
    while (i < n && src.charCodeAt(i) !== GT) {
      const c = src.charCodeAt(i);
      if (isSpace(c) || c === SLASH) {
        let k = i + 1;
        while (k < n && (isSpace(src.charCodeAt(k)) || src.charCodeAt(k) === SLASH)) k += 1;
        emit("", i, k);
        i = k;
      } else if (c === EQ) {
        emit("hl-punct", i, i + 1);
        i += 1;
        const q = src[i];
        if (q === '"' || q === "'") {
          const end = until(q, i + 1);
          emit("hl-value", i, end);
          i = end;
        } else {
          let k = i;
          while (k < n && !isSpace(src.charCodeAt(k)) && src.charCodeAt(k) !== GT) k += 1;
          if (k > i) emit("hl-value", i, k);
          i = k;
        }
      } else {
        let k = i + 1;
        while (k < n && !attrEnd(src.charCodeAt(k))) k += 1;
        emit("hl-attr", i, k);
        i = k;
      }
    }
    if (i < n) {
      emit("hl-tag", i, i + 1);
      i += 1;
    }
  }
}

/** A <pre> with the highlighted source; adjacent plain tokens share one text node. */
export function highlightHtml(src) {
  const pre = document.createElement("pre");
  pre.className = "source-body";
  let plain = -1; // where the run of plain tokens not yet appended starts
  scan(src, (cls, start, end) => {
    if (!cls) {
      if (plain < 0) plain = start;
      return;
    }
    if (plain >= 0) pre.append(document.createTextNode(src.slice(plain, start)));
    plain = -1;
    pre.append(span(cls, src.slice(start, end)));
  });
  if (plain >= 0) pre.append(document.createTextNode(src.slice(plain)));
  return pre;
}

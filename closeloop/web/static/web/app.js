// closeloop keyboard shortcuts and small page behaviours. No framework; htmx does the rest.
(function () {
  "use strict";
  const dialog = () => document.getElementById("shortcuts");
  const typing = (el) => el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  const ACTION_KEYS = new Set(["a", "t", "i", "p", "s", "e", "c", "r"]);
  let pendingG = false;

  function rows() { return Array.from(document.querySelectorAll("tr[data-row]")); }
  function move(step) {
    const all = rows();
    if (!all.length) return;
    let i = all.findIndex((r) => r.classList.contains("current"));
    if (i >= 0) all[i].classList.remove("current");
    i = Math.max(0, Math.min(all.length - 1, i + step));
    all[i].classList.add("current");
    const link = all[i].querySelector("a[data-open]");
    if (link) link.focus();
  }
  function openAction(key) {
    const block = document.querySelector('details[data-key="' + key + '"]');
    if (!block) return false;
    block.open = true;
    const field = block.querySelector("form input:not([type=hidden]), form select, form textarea");
    (field || block.querySelector("summary")).focus();
    return true;
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
    const key = ev.key;
    if (pendingG) {
      pendingG = false;
      const target = { m: "mine", t: "team", h: "triage", w: "waiting", o: "overdue", q: "quarantine" }[key];
      const link = target && document.querySelector('a[data-goto="' + target + '"]');
      if (link) { ev.preventDefault(); window.location = link.href; }
      return;
    }
    if (key === "?") { ev.preventDefault(); dialog().showModal(); return; }
    if (key === "g") { pendingG = true; setTimeout(() => { pendingG = false; }, 1200); return; }
    if (key === "/") { const s = document.querySelector("[data-search]"); if (s) { ev.preventDefault(); s.focus(); s.select(); } return; }
    if (key === "j") { ev.preventDefault(); move(1); return; }
    if (key === "k") { ev.preventDefault(); move(-1); return; }
    if (key === "x") {
      const row = document.querySelector("tr.current input[type=checkbox]");
      if (row) { ev.preventDefault(); row.checked = !row.checked; }
      return;
    }
    if (ACTION_KEYS.has(key) && openAction(key)) ev.preventDefault();
  });

  document.addEventListener("click", function (ev) {
    const opener = ev.target.closest("[data-shortcuts-open]");
    if (opener) { dialog().showModal(); return; }
    const fieldButton = ev.target.closest("button[data-field]");
    if (!fieldButton) return;
    // Show the field's source and light up its boxes on the page images.
    const name = fieldButton.dataset.field;
    const row = document.getElementById("src-" + name);
    const showing = row && row.hidden;
    document.querySelectorAll(".fields tr.source").forEach((r) => { r.hidden = true; });
    document.querySelectorAll("button[data-field]").forEach((b) => b.setAttribute("aria-expanded", "false"));
    document.querySelectorAll(".box.on").forEach((b) => b.classList.remove("on"));
    if (!showing) return;
    row.hidden = false;
    fieldButton.setAttribute("aria-expanded", "true");
    const boxes = document.querySelectorAll('.box[data-box="' + CSS.escape(name) + '"]');
    boxes.forEach((b) => b.classList.add("on"));
    if (boxes.length) boxes[0].closest("figure").scrollIntoView({ behavior: "smooth", block: "center" });
  });
})();

/* Waypost admin UI: small enhancements. Every page works without this script. */
(function () {
  "use strict";

  // Mirrors waypost/domain/codenames.py derive_code_name (without the "_2" suffix for taken
  // names: the server adds that when the code name is left as derived).
  var LETTERS = {
    "ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "đ": "d", "ł": "l", "þ": "th", "ð": "d",
    "\u0131": "i"
  };
  var MAX_LENGTH = 100;

  function deriveCodeName(name) {
    var lower = name.toLowerCase().replace(/[ßæøœđłþð\u0131]/g, function (c) {
      return LETTERS[c];
    });
    var ascii = lower.normalize("NFKD").replace(/[^\x00-\x7f]/g, "");
    var base = ascii.replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
    base = base.slice(0, MAX_LENGTH).replace(/_+$/, "");
    return base || "activity";
  }

  function setupCodeName(form) {
    var source = form.querySelector("[data-code-name-source]");
    var target = form.querySelector("[data-code-name]");
    var auto = form.querySelector("[data-code-name-auto]");
    if (!source || !target) return;
    source.addEventListener("input", function () {
      if (target.dataset.auto === "1") target.value = source.value ? deriveCodeName(source.value) : "";
    });
    target.addEventListener("input", function () {
      target.dataset.auto = "0";
      if (auto) auto.value = "0";
    });
  }

  function setupRows(form) {
    form.querySelectorAll("[data-add-row]").forEach(function (button) {
      var kind = button.getAttribute("data-add-row");
      var rows = form.querySelector('[data-rows="' + kind + '"]');
      var template = form.querySelector('template[data-row-template="' + kind + '"]');
      if (!rows || !template) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        var index = rows.getAttribute("data-next-index");
        rows.setAttribute("data-next-index", String(Number(index) + 1));
        var html = template.innerHTML.replace(/__i__/g, index);
        rows.insertAdjacentHTML("beforeend", html);
        var row = rows.lastElementChild;
        enableRemove(row);
        var first = row.querySelector("input, select, textarea");
        if (first) first.focus();
      });
    });
    form.querySelectorAll("[data-row]").forEach(enableRemove);
  }

  function enableRemove(row) {
    var remove = row.querySelector("[data-remove-row]");
    if (!remove) return;
    remove.hidden = false;
    remove.addEventListener("click", function () {
      var container = row.parentElement;
      row.remove();
      var next = container && container.querySelector("input, select, textarea, button");
      if (next) next.focus();
    });
  }

  // At most one field is primary: checking one unchecks the others (the server checks too).
  function setupExclusive(form) {
    form.addEventListener("change", function (event) {
      var box = event.target;
      if (!box.matches || !box.matches("[data-exclusive]") || !box.checked) return;
      var group = box.getAttribute("data-exclusive");
      form.querySelectorAll('[data-exclusive="' + group + '"]').forEach(function (other) {
        if (other !== box) other.checked = false;
      });
    });
  }

  // Max length applies to text fields only: for another type its box is off, and not sent.
  function setupTextOnly(form) {
    var sync = function (select) {
      var row = select.closest("[data-row]");
      var box = row && row.querySelector("[data-text-only]");
      if (box) box.disabled = select.value !== "text";
    };
    form.querySelectorAll("[data-field-type]").forEach(sync);
    form.addEventListener("change", function (event) {
      var target = event.target;
      if (target.matches && target.matches("[data-field-type]")) sync(target);
    });
  }

  function setupConfirm() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  function setupCopy() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      var target = document.getElementById(button.getAttribute("data-copy"));
      var status = document.getElementById(button.getAttribute("data-copy") + "-status");
      if (!target) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        var done = function (text) { if (status) status.textContent = text; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(target.textContent.trim()).then(
            function () { done("Copied."); },
            function () { done("Copying failed: select the key and copy it."); }
          );
        } else {
          var range = document.createRange();
          range.selectNodeContents(target);
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          done("Selected: press Ctrl+C (or Cmd+C) to copy.");
        }
      });
    });
  }

  // A table's box says when it scrolls sideways (its hint), and is in the tab order only while
  // it scrolls at all, so that arrow keys scroll it; one that fits is no extra stop. Boxes
  // change size with the window, and when their <details> opens.
  function setupTableBoxes() {
    var boxes = document.querySelectorAll(".table-wrap");
    var update = function (box) {
      var sideways = box.scrollWidth > box.clientWidth + 1;
      var scrolls = sideways || box.scrollHeight > box.clientHeight + 1;
      var hint = box.previousElementSibling;
      if (hint && hint.classList.contains("scroll-hint")) hint.classList.toggle("shown", sideways);
      if (scrolls) box.setAttribute("tabindex", "0");
      else box.removeAttribute("tabindex");
    };
    if (window.ResizeObserver) {
      var observer = new ResizeObserver(function (entries) {
        entries.forEach(function (entry) { update(entry.target); });
      });
      boxes.forEach(function (box) { observer.observe(box); });
    } else {
      boxes.forEach(update);
      window.addEventListener("resize", function () { boxes.forEach(update); });
    }
  }

  // A playbook's form: only the controls of the chosen trigger are shown (all are, and only
  // the chosen ones are read, without this script).
  function setupTriggerParts(form) {
    var event = form.querySelector('select[name="event"]');
    var parts = form.querySelectorAll("[data-trigger]");
    if (!event || !parts.length) return;
    var show = function () {
      parts.forEach(function (part) {
        part.hidden = part.getAttribute("data-trigger").split(" ").indexOf(event.value) < 0;
      });
    };
    event.addEventListener("change", show);
    show();
  }

  // The report builder: only the controls of the chosen kind are shown (all are, and only
  // the chosen kind's are read, without this script).
  function setupKindParts(form) {
    var kind = form.querySelector('select[name="kind"]');
    var parts = form.querySelectorAll("[data-kinds]");
    if (!kind || !parts.length) return;
    var show = function () {
      parts.forEach(function (part) {
        part.hidden = part.getAttribute("data-kinds").split(" ").indexOf(kind.value) < 0;
      });
    };
    kind.addEventListener("change", show);
    show();
  }

  function setupNav() {
    var toggle = document.querySelector(".nav-toggle");
    var nav = document.getElementById("site-nav");
    if (!toggle || !nav) return;
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      nav.classList.toggle("open", open);
    });
  }

  document.documentElement.classList.remove("no-js");
  document.documentElement.classList.add("js");

  document.addEventListener("DOMContentLoaded", function () {
    setupNav();
    setupTableBoxes();
    setupConfirm();
    setupCopy();
    document.querySelectorAll("form").forEach(function (form) {
      setupCodeName(form);
      setupRows(form);
      setupExclusive(form);
      setupTextOnly(form);
      setupTriggerParts(form);
      setupKindParts(form);
    });
    var summary = document.getElementById("error-summary");
    if (summary) summary.focus();
  });

  window.WaypostAdmin = { deriveCodeName: deriveCodeName };
})();

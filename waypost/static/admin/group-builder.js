/* Waypost admin UI: the contact group condition builder.

   The form sends the condition as JSON from its textarea and works without this script. The
   builder shows that JSON as nested controls (all of / any of, not; activity, contact field,
   consent and group conditions), writes every change back to the textarea, reads the
   textarea again when someone edits the JSON by hand, and shows a live count of the contacts
   the condition holds for, from the admin API's dry run (POST /api/groups/validate). The
   server checks the condition again on saving: the builder only helps. */
(function () {
  "use strict";

  // A count reads every contact: wait for a pause in typing rather than count each key.
  var COUNT_DELAY_MS = 500;
  var NUMBER_TYPES = { integer: true, decimal: true, datetime: true };
  var KINDS = [
    ["activity", "Activity"],
    ["contact", "Contact field"],
    ["consent", "Consent"],
    ["group", "Group membership"],
    ["all", "Nested all of / any of"]
  ];
  var KIND_NAMES = { activity: "activity", contact: "contact field", consent: "consent", group: "group membership" };
  var COUNTS = [["at_least", "at least"], ["at_most", "at most"], ["exactly", "exactly"]];
  var WINDOWS = [["days", "in the last … days"], ["between", "between dates"], ["all", "ever"]];
  // Dates are typed as ISO 8601, as everywhere in the UI: a date picker shows the locale's
  // format (mm/dd/yyyy). The server checks the condition.
  var DATE = { placeholder: "YYYY-MM-DD", spellcheck: "false", autocomplete: "off", size: 12 };
  var FIELD_OPS = { eq: "=", gt: ">", gte: "≥", lt: "<", lte: "≤", contains: "contains" };
  var TEXT_OPS = [
    ["equals", "is"], ["not_equals", "is not"], ["contains", "contains"],
    ["in", "is one of"], ["exists", "is set or not"]
  ];
  var DATE_OPS = [["before", "is before"], ["after", "is after"], ["exists", "is set or not"]];

  // -- the condition as a tree of nodes, and back to JSON ------------------------------------

  function CannotShow(message) { this.message = message; }

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function fromJSON(json) {
    if (!isObject(json) || Object.keys(json).length !== 1) {
      throw new CannotShow("a condition is an object with one key");
    }
    var key = Object.keys(json)[0];
    var value = json[key];
    if (key === "not") {
      var inner = fromJSON(value);
      if (inner.not) return { kind: "all", not: true, items: [inner] };
      inner.not = true;
      return inner;
    }
    if (key === "all" || key === "any") {
      if (!Array.isArray(value)) throw new CannotShow(key + " takes a list");
      return { kind: "all", any: key === "any", not: false, items: value.map(fromJSON) };
    }
    if (key === "activity") return activityFromJSON(value);
    if (key === "contact") return contactFromJSON(value);
    if (key === "consent" || key === "group") {
      if (typeof value !== "string") throw new CannotShow(key + " takes a text");
      var node = { kind: key, not: false };
      node[key] = value;
      return node;
    }
    throw new CannotShow("unknown condition " + key);
  }

  function activityFromJSON(value) {
    if (!isObject(value)) throw new CannotShow("activity takes an object");
    var known = ["type", "at_least", "at_most", "exactly", "within_days", "between", "fields"];
    Object.keys(value).forEach(function (key) {
      if (known.indexOf(key) < 0) throw new CannotShow("unknown key " + key);
    });
    var count = "at_least";
    COUNTS.forEach(function (pair) { if (pair[0] in value) count = pair[0]; });
    var node = {
      kind: "activity", not: false, type: String(value.type || ""), count: count,
      n: String(count in value ? value[count] : 1), window: "all", days: "30", from: "", to: "",
      fields: []
    };
    if ("within_days" in value) {
      node.window = "days";
      node.days = String(value.within_days);
    } else if (isObject(value.between)) {
      node.window = "between";
      node.from = String(value.between.from || "");
      node.to = String(value.between.to || "");
    }
    var fields = value.fields || {};
    if (!isObject(fields)) throw new CannotShow("fields takes an object");
    Object.keys(fields).forEach(function (name) {
      if (!isObject(fields[name])) throw new CannotShow("fields." + name + " takes an object");
      Object.keys(fields[name]).forEach(function (op) {
        node.fields.push({ name: name, op: op, value: String(fields[name][op]) });
      });
    });
    return node;
  }

  function contactFromJSON(value) {
    if (!isObject(value) || typeof value.field !== "string" || Object.keys(value).length !== 2) {
      throw new CannotShow("contact takes field and one operator");
    }
    var op = Object.keys(value).filter(function (k) { return k !== "field"; })[0];
    var operand = value[op];
    var node = { kind: "contact", not: false, field: value.field, attr: "", op: op, value: "" };
    if (value.field.indexOf("attributes.") === 0) {
      node.field = "attributes";
      node.attr = value.field.slice("attributes.".length);
    }
    if (op === "in") {
      if (!Array.isArray(operand)) throw new CannotShow("in takes a list");
      operand.forEach(function (item) {
        if (String(item).indexOf(",") >= 0) throw new CannotShow("a value of in holds a comma");
      });
      node.value = operand.join(", ");
    } else if (op === "exists") {
      node.value = operand ? "true" : "false";
    } else {
      node.value = operand === null || operand === undefined ? "" : String(operand);
    }
    return node;
  }

  function wholeNumber(text) {
    return /^\s*\d+\s*$/.test(text) ? Number(text) : text;
  }

  function toJSON(node) {
    var json;
    if (node.kind === "all") {
      json = {};
      json[node.any ? "any" : "all"] = node.items.map(toJSON);
    } else if (node.kind === "activity") {
      var activity = { type: node.type };
      activity[node.count] = wholeNumber(node.n);
      if (node.window === "days") activity.within_days = wholeNumber(node.days);
      if (node.window === "between") activity.between = { from: node.from, to: node.to };
      var fields = {};
      node.fields.forEach(function (f) {
        if (!f.name) return;
        fields[f.name] = fields[f.name] || {};
        fields[f.name][f.op] = f.value;
      });
      if (Object.keys(fields).length) activity.fields = fields;
      json = { activity: activity };
    } else if (node.kind === "contact") {
      var contact = { field: node.field === "attributes" ? "attributes." + node.attr : node.field };
      if (node.op === "in") {
        contact["in"] = node.value.split(",").map(function (v) { return v.trim(); })
          .filter(function (v) { return v; });
      } else if (node.op === "exists") {
        contact.exists = node.value !== "false";
      } else {
        contact[node.op] = node.value;
      }
      json = { contact: contact };
    } else {
      json = {};
      json[node.kind] = node[node.kind];
    }
    return node.not ? { not: json } : json;
  }

  function newNode(kind, catalog) {
    if (kind === "activity") {
      var first = catalog.types[0];
      return {
        kind: "activity", not: false, type: first ? first.code : "", count: "at_least", n: "1",
        window: "days", days: "30", from: "", to: "", fields: []
      };
    }
    if (kind === "contact") {
      return { kind: "contact", not: false, field: "email", attr: "", op: "exists", value: "true" };
    }
    if (kind === "consent") {
      return { kind: "consent", not: false, consent: catalog.consents.length ? catalog.consents[0].code : "" };
    }
    if (kind === "group") {
      return { kind: "group", not: false, group: catalog.groups.length ? catalog.groups[0].id : "" };
    }
    return { kind: "all", any: false, not: false, items: [newNode("activity", catalog)] };
  }

  // -- controls -------------------------------------------------------------------------------

  function h(tag, props, children) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      var value = props[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function control(id, label, input) {
    return h("div", { className: "cb-control" }, [h("label", { "for": id, text: label }), input]);
  }

  function Builder(root, textarea, status, catalog) {
    this.root = root;
    this.textarea = textarea;
    this.status = status;
    this.catalog = catalog;
    this.sequence = 0;
    this.timer = null;
    this.model = null;
    this.token = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  }

  Builder.prototype.load = function () {
    var text = this.textarea.value.trim();
    var json;
    try {
      json = JSON.parse(text);
    } catch (error) {
      return "The JSON is not valid yet: " + error.message;
    }
    try {
      var node = fromJSON(json);
      // The builder adds conditions to a list: a single condition becomes "all of" it.
      this.model = node.kind === "all" && !node.not ? node : { kind: "all", any: false, not: false, items: [node] };
    } catch (error) {
      if (error instanceof CannotShow) return "The builder cannot show this condition (" + error.message + "); edit the JSON.";
      throw error;
    }
    return "";
  };

  Builder.prototype.render = function () {
    var active = document.activeElement && this.root.contains(document.activeElement) ? document.activeElement.id : "";
    this.root.textContent = "";
    this.root.appendChild(this.node(this.model, null, "cb"));
    var again = active && document.getElementById(active);
    if (again) again.focus();
  };

  // A change from a control: structural ones redraw the builder; all update the JSON.
  Builder.prototype.changed = function (redraw) {
    if (redraw) this.render();
    this.textarea.value = JSON.stringify(toJSON(this.model), null, 2);
    this.scheduleCount();
  };

  Builder.prototype.input = function (id, value, onInput, attrs) {
    var self = this;
    var props = { id: id, type: "text", value: value };
    Object.keys(attrs || {}).forEach(function (key) { props[key] = attrs[key]; });
    var input = h("input", props);
    input.value = value;
    input.addEventListener("input", function () { onInput(input.value); self.changed(false); });
    return input;
  };

  Builder.prototype.select = function (id, options, current, onChange, redraw) {
    var self = this;
    var select = h("select", { id: id }, options.map(function (pair) {
      return h("option", { value: pair[0], text: pair[1] });
    }));
    if (!options.some(function (pair) { return pair[0] === current; })) {
      select.appendChild(h("option", { value: current, text: current + " (unknown)" }));
    }
    select.value = current;
    select.addEventListener("change", function () { onChange(select.value); self.changed(redraw); });
    return select;
  };

  Builder.prototype.node = function (node, parent, id) {
    var self = this;
    var kindName = node.kind === "all" ? (node.any ? "any of" : "all of") : KIND_NAMES[node.kind];
    var box = h("div", { className: "cb-node cb-" + node.kind, role: "group", "aria-labelledby": id + "-legend" });
    var head = h("div", { className: "cb-head" });
    head.appendChild(h("span", { id: id + "-legend", className: "cb-legend", text: parent ? "Condition: " + kindName : "Contacts in the group match" }));
    var not = h("input", { type: "checkbox", id: id + "-not" });
    not.checked = node.not;
    not.addEventListener("change", function () { node.not = not.checked; self.changed(false); });
    head.appendChild(h("span", { className: "cb-not" }, [not, h("label", { "for": id + "-not", text: "Not (does not hold)" })]));
    if (parent) {
      var remove = h("button", { type: "button", className: "button-small cb-remove", id: id + "-remove", text: "Remove", "aria-label": "Remove this " + kindName + " condition" });
      remove.addEventListener("click", function () {
        parent.items.splice(parent.items.indexOf(node), 1);
        self.changed(true);
        var add = document.getElementById(id.replace(/-\d+$/, "") + "-add-kind");
        if (add) add.focus();
      });
      head.appendChild(remove);
    }
    box.appendChild(head);
    var body = h("div", { className: "cb-body" });
    if (node.kind === "all") this.allControls(node, body, id);
    else if (node.kind === "activity") this.activityControls(node, body, id);
    else if (node.kind === "contact") this.contactControls(node, body, id);
    else if (node.kind === "consent") this.choiceControls(node, body, id, "consent", "Agrees to", this.catalog.consents.map(function (c) { return [c.code, c.name]; }), "No consents exist yet.");
    else this.choiceControls(node, body, id, "group", "Is in the group", this.catalog.groups.map(function (g) { return [g.id, g.name]; }), "No other groups exist yet.");
    box.appendChild(body);
    return box;
  };

  Builder.prototype.allControls = function (node, body, id) {
    var self = this;
    body.appendChild(h("div", { className: "cb-row" }, [control(id + "-match", "Match", this.select(id + "-match", [["all", "all of these"], ["any", "any of these"]], node.any ? "any" : "all", function (v) { node.any = v === "any"; }, true))]));
    var list = h("ol", { className: "cb-items" });
    node.items.forEach(function (item, i) {
      list.appendChild(h("li", {}, [self.node(item, node, id + "-" + i)]));
    });
    body.appendChild(list);
    var kind = this.select(id + "-add-kind", KINDS, "activity", function () {}, false);
    var add = h("button", { type: "button", className: "button-secondary", id: id + "-add", text: "Add" });
    add.addEventListener("click", function () {
      node.items.push(newNode(kind.value, self.catalog));
      self.changed(true);
      var added = document.getElementById(id + "-" + (node.items.length - 1) + "-remove");
      var first = added && added.closest(".cb-node").querySelector(":scope > .cb-body select, :scope > .cb-body input");
      if (first) first.focus();
    });
    body.appendChild(h("div", { className: "cb-row cb-add" }, [control(id + "-add-kind", "Add a condition", kind), add]));
  };

  Builder.prototype.activityControls = function (node, body, id) {
    var self = this;
    var types = this.catalog.types.map(function (t) { return [t.code, t.name + (t.enabled ? "" : " (disabled)")]; });
    var row = h("div", { className: "cb-row" });
    row.appendChild(control(id + "-type", "Activity type", this.select(id + "-type", types, node.type, function (v) { node.type = v; node.fields = []; }, true)));
    row.appendChild(control(id + "-count", "How often", this.select(id + "-count", COUNTS, node.count, function (v) { node.count = v; }, false)));
    row.appendChild(control(id + "-n", "Times", this.input(id + "-n", node.n, function (v) { node.n = v; }, { type: "number", min: "0", inputmode: "numeric", className: "cb-number" })));
    row.appendChild(control(id + "-window", "When", this.select(id + "-window", WINDOWS, node.window, function (v) { node.window = v; }, true)));
    if (node.window === "days") {
      row.appendChild(control(id + "-days", "Days", this.input(id + "-days", node.days, function (v) { node.days = v; }, { type: "number", min: "1", inputmode: "numeric", className: "cb-number" })));
    } else if (node.window === "between") {
      row.appendChild(control(id + "-from", "From", this.input(id + "-from", node.from, function (v) { node.from = v; }, DATE)));
      row.appendChild(control(id + "-to", "To (inclusive)", this.input(id + "-to", node.to, function (v) { node.to = v; }, DATE)));
    }
    body.appendChild(row);
    var type = this.catalog.types.filter(function (t) { return t.code === node.type; })[0];
    var fields = type ? type.fields : [];
    node.fields.forEach(function (filter, i) { body.appendChild(self.filterRow(node, filter, fields, id + "-f" + i)); });
    if (fields.length) {
      var add = h("button", { type: "button", className: "button-small", id: id + "-add-filter", text: "Add a field filter" });
      add.addEventListener("click", function () {
        var first = fields[0];
        node.fields.push({ name: first.name, op: NUMBER_TYPES[first.type] ? "gte" : "eq", value: "" });
        self.changed(true);
        var value = document.getElementById(id + "-f" + (node.fields.length - 1) + "-name");
        if (value) value.focus();
      });
      body.appendChild(h("div", { className: "cb-row" }, [add]));
    }
  };

  Builder.prototype.filterRow = function (node, filter, fields, id) {
    var self = this;
    var specOf = function (name) { return fields.filter(function (f) { return f.name === name; })[0]; };
    var spec = specOf(filter.name);
    // The operators the server takes for the field's type (a condition read from the JSON
    // may hold another: the select shows it as unknown, and the server's message explains).
    var ops = spec ? spec.operators : Object.keys(FIELD_OPS);
    var row = h("div", { className: "cb-row cb-filter", role: "group", "aria-label": "Field filter" });
    row.appendChild(control(id + "-name", "Field", this.select(id + "-name", fields.map(function (f) { return [f.name, f.name + " (" + f.type + ")"]; }), filter.name, function (v) {
      filter.name = v;
      var chosen = specOf(v);
      if (chosen && chosen.operators.indexOf(filter.op) < 0) filter.op = chosen.operators[0];
    }, true)));
    row.appendChild(control(id + "-op", "Compare", this.select(id + "-op", ops.map(function (op) { return [op, FIELD_OPS[op]]; }), filter.op, function (v) { filter.op = v; }, false)));
    var value = spec && spec.type === "boolean"
      ? this.select(id + "-value", [["true", "true"], ["false", "false"]], filter.value || "true", function (v) { filter.value = v; }, false)
      : this.input(id + "-value", filter.value, function (v) { filter.value = v; }, spec && spec.type === "datetime" ? { placeholder: "2026-01-31T00:00:00Z" } : {});
    if (spec && spec.type === "boolean" && !filter.value) filter.value = "true";
    row.appendChild(control(id + "-value", "Value", value));
    var remove = h("button", { type: "button", className: "button-small cb-remove", text: "Remove filter" });
    remove.addEventListener("click", function () {
      node.fields.splice(node.fields.indexOf(filter), 1);
      self.changed(true);
    });
    row.appendChild(remove);
    return row;
  };

  Builder.prototype.contactControls = function (node, body, id) {
    var fields = this.catalog.contact_fields;
    var spec = fields.filter(function (f) { return f.name === node.field; })[0];
    var ops = spec && spec.date ? DATE_OPS : TEXT_OPS;
    if (!ops.some(function (pair) { return pair[0] === node.op; })) {
      node.op = ops[0][0];
      node.value = node.op === "exists" ? "true" : "";
    }
    var options = fields.map(function (f) { return [f.name, f.label]; }).concat([["attributes", "Custom attribute…"]]);
    var row = h("div", { className: "cb-row" });
    row.appendChild(control(id + "-field", "Contact field", this.select(id + "-field", options, node.field, function (v) { node.field = v; }, true)));
    if (node.field === "attributes") {
      row.appendChild(control(id + "-attr", "Attribute name", this.input(id + "-attr", node.attr, function (v) { node.attr = v; }, { spellcheck: "false", autocapitalize: "off" })));
    }
    row.appendChild(control(id + "-op", "Compare", this.select(id + "-op", ops, node.op, function (v) {
      if ((v === "exists") !== (node.op === "exists")) node.value = v === "exists" ? "true" : "";
      node.op = v;
    }, true)));
    var value;
    if (node.op === "exists") {
      value = this.select(id + "-value", [["true", "is set"], ["false", "is not set"]], node.value === "false" ? "false" : "true", function (v) { node.value = v; }, false);
    } else {
      var attrs = node.op === "before" || node.op === "after" ? DATE : (node.op === "in" ? { placeholder: "pro, team" } : {});
      value = this.input(id + "-value", node.value, function (v) { node.value = v; }, attrs);
    }
    row.appendChild(control(id + "-value", node.op === "in" ? "Values (comma-separated)" : "Value", value));
    body.appendChild(row);
  };

  Builder.prototype.choiceControls = function (node, body, id, key, label, options, none) {
    if (!options.length && !node[key]) {
      body.appendChild(h("p", { className: "hint", text: none }));
      return;
    }
    body.appendChild(h("div", { className: "cb-row" }, [
      control(id + "-" + key, label, this.select(id + "-" + key, options, node[key], function (v) { node[key] = v; }, false))
    ]));
  };

  // -- the live count -----------------------------------------------------------------------------

  // Until the new count arrives the old one is stale: aria-busy holds back announcements
  // of the live region meanwhile, so a screen reader hears only the final count.
  Builder.prototype.scheduleCount = function () {
    var self = this;
    this.status.setAttribute("aria-busy", "true");
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(function () { self.count(); }, COUNT_DELAY_MS);
  };

  Builder.prototype.say = function (text, state) {
    this.status.textContent = text;
    this.status.setAttribute("data-state", state);
    this.status.setAttribute("aria-busy", state === "busy" ? "true" : "false");
  };

  Builder.prototype.count = function () {
    var self = this;
    var condition;
    try {
      condition = JSON.parse(this.textarea.value);
    } catch (error) {
      this.say("No count: the JSON is not valid.", "invalid");
      return;
    }
    var sequence = ++this.sequence;
    this.say("Counting…", "busy");
    fetch("/api/groups/validate", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": this.token },
      body: JSON.stringify({ condition: condition })
    }).then(function (response) {
      return response.json().then(function (body) { return { status: response.status, body: body }; },
        function () { return { status: response.status, body: null }; });
    }).then(function (answer) {
      if (sequence !== self.sequence) return; // a newer count is on its way
      if (answer.status === 200 && answer.body) {
        var n = answer.body.count;
        self.say(n.toLocaleString("en") + (n === 1 ? " contact matches" : " contacts match") + " this condition now.", "ok");
      } else if (answer.body && answer.body.error) {
        self.say("Not valid yet: " + answer.body.error.message, "invalid");
      } else {
        self.say("The count is not available (HTTP " + answer.status + ").", "invalid");
      }
    }, function () {
      if (sequence === self.sequence) self.say("The count is not available: Waypost did not answer.", "invalid");
    });
  };

  function setup() {
    var root = document.getElementById("condition-builder");
    var textarea = document.getElementById("condition");
    var status = document.getElementById("condition-count");
    if (!root || !textarea || !status) return;
    var builder = new Builder(root, textarea, status, JSON.parse(root.getAttribute("data-catalog")));
    var note = h("p", { className: "cb-note", id: "condition-builder-note", role: "status" });
    root.parentNode.insertBefore(note, root);
    var canvas = h("div", {});
    root.appendChild(canvas);
    builder.root = canvas;
    var problem = builder.load();
    if (problem) {
      note.textContent = problem;
      root.hidden = true;
    } else {
      builder.render();
      root.hidden = false;
      var details = document.querySelector("[data-condition-json]");
      // The error the server found is in the JSON's hint: keep it in view.
      if (details && !details.querySelector("[aria-invalid]")) details.open = false;
    }
    textarea.addEventListener("input", function () {
      var trouble = builder.load();
      note.textContent = trouble;
      root.hidden = Boolean(trouble) || !builder.model;
      if (!trouble) builder.render();
      builder.scheduleCount();
    });
    builder.scheduleCount();
  }

  document.addEventListener("DOMContentLoaded", setup);
  window.WaypostGroupBuilder = { fromJSON: fromJSON, toJSON: toJSON };
})();

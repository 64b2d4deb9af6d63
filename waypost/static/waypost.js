/* The Waypost browser tracker: see docs/browser-tracking.md.
 *
 * The page's inline stub defines window[WaypostObject] (default "wp") and queues calls in its
 * `q`; this script replays them in order, then takes the stub's place. It adds no other global.
 */
(() => {
  "use strict";

  const name = window.WaypostObject || "wp";
  // currentScript is set only while this script first runs, which is when it is read.
  const script =
    document.currentScript || document.querySelector('script[data-key][src*="waypost.js"]');
  if (!script) return;
  const key = script.getAttribute("data-key") || "";
  // The API is wherever the script came from, also when Waypost is served under a path.
  const base = new URL(".", script.src).href;

  const LEVELS = ["none", "essential", "visitor", "all"];
  const YEAR = 365 * 24 * 60 * 60;
  const MAX_FAILED = 100; // a page that can never reach Waypost must not grow without bound

  // Until the page says otherwise the level is "essential": no tracking before a choice.
  let level = LEVELS.includes(readCookie("wp_cookielevel"))
    ? readCookie("wp_cookielevel")
    : "essential";
  let contact = null;
  const backlog = []; // calls waiting behind a consent or identify whose answer is awaited
  let awaited = null; // that consent's or identify's answer (a promise)
  const failed = []; // sends that met a network error, sent again when the browser is online
  let hidden = false; // while hidden or unloading, a beacon is the send that survives

  const tracked = () => level === "visitor" || level === "all";

  // -- cookies ---------------------------------------------------------------------------

  function readCookie(cookie) {
    const pair = document.cookie.split("; ").find((p) => p.startsWith(cookie + "="));
    try {
      return pair ? decodeURIComponent(pair.slice(cookie.length + 1)) : null;
    } catch (malformed) {
      return null; // not written by us: as good as absent
    }
  }

  function writeCookie(cookie, value, maxAge) {
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie =
      `${cookie}=${encodeURIComponent(value)}; path=/; max-age=${maxAge}; SameSite=Lax${secure}`;
  }

  // Only at "visitor" or "all" may the contact outlive the page; below, it lives in memory.
  function keepContact() {
    if (contact && tracked()) writeCookie("wp_contact", contact, YEAR);
    else writeCookie("wp_contact", "", 0);
  }

  function setContact(answer) {
    if (answer && answer.contact) {
      contact = answer.contact;
      keepContact();
    }
  }

  // -- sending ---------------------------------------------------------------------------

  // Resolves with the answer's JSON, or null for an error answer (or a beacon, which has
  // none). A send that could not reach the server resolves only once it is answered, so the
  // calls queued behind a consent wait for the contact it creates.
  const send = (path, body) =>
    new Promise((resolve) => post({ path, body: JSON.stringify(body), resolve }));

  function post(request) {
    // The key goes in the query because sendBeacon cannot set headers.
    const url = `${base}browser/${request.path}?key=${encodeURIComponent(key)}`;
    // text/plain keeps the request "simple" (no CORS preflight), as a beacon's is anyway.
    if (hidden && navigator.sendBeacon && navigator.sendBeacon(url, request.body)) {
      request.resolve(null);
      return;
    }
    fetch(url, {
      method: "POST",
      body: request.body,
      keepalive: true,
      headers: { "Content-Type": "text/plain" },
      mode: "cors",
    }).then(
      (response) => request.resolve(response.ok ? response.json().catch(() => null) : null),
      () => {
        if (failed.length < MAX_FAILED) failed.push(request);
        else request.resolve(null);
      },
    );
  }

  const resendFailed = () => failed.splice(0).forEach(post);

  function newId() {
    // An id per activity lets the server store a resent activity only once.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  const text = (value) => (value === undefined || value === null ? undefined : String(value));

  function logActivity(activity) {
    // Without a contact (no consent yet) or below "visitor", the activity is dropped, not
    // kept for later: nothing the visitor did before consenting is ever logged.
    if (!contact || !tracked() || !activity.type) return;
    activity.url = activity.url || location.href;
    activity.id = newId();
    activity.occurredAt = new Date().toISOString();
    send("activity", { contact, cookieLevel: level, activity });
  }

  // -- commands --------------------------------------------------------------------------

  // A command returns a promise when later calls must wait for its answer (the contact).
  const commands = {
    cookielevel(value) {
      if (!LEVELS.includes(value)) return;
      level = value;
      writeCookie("wp_cookielevel", value, YEAR);
      keepContact();
    },
    consent(options) {
      const agree = options.agree === true;
      // Revoking without a contact has nothing to revoke, and must not create a contact.
      if (!options.consent || (!agree && !contact)) return;
      const body = { contact: contact || undefined, consent: options.consent, agree };
      return send("consent", body).then(setContact);
    },
    identify(options) {
      // Naming the visitor is tracking them, so it needs the level that activities need.
      if (!options.email || !tracked()) return;
      const { email, first, last, hash } = options;
      const body = { contact: contact || undefined, cookieLevel: level, email, first, last, hash };
      return send("identify", body).then(setContact);
    },
    pagevisit() {
      logActivity({
        type: "pagevisit",
        value: document.title,
        url: location.href,
        referrer: document.referrer || undefined,
      });
    },
    click(options) {
      logActivity({ type: "click", value: text(options.value) });
    },
    customactivity(options) {
      logActivity({ type: options.type, value: text(options.value), title: options.title });
    },
    activity(options) {
      // Ortto's form: its "act:cm:" prefix is accepted, and its attributes are our fields.
      const type = String(options.activity_id || "").replace(/^act:cm:/, "");
      logActivity({ type, fields: options.attributes });
    },
  };

  function drain() {
    while (!awaited && backlog.length) {
      const [command, options] = backlog.shift();
      // Unknown commands are ignored, so that a page written for a newer tracker still works.
      if (!Object.prototype.hasOwnProperty.call(commands, command)) continue;
      const answer = commands[command](options == null ? {} : options);
      if (answer) {
        awaited = answer;
        answer.then(() => {
          // Unless leaving() stopped waiting for it, and another answer is awaited now.
          if (awaited !== answer) return;
          awaited = null;
          drain();
        });
      }
    }
  }

  function track(...args) {
    backlog.push(args);
    drain();
  }

  // -- the page going away and coming back -------------------------------------------------

  function leaving() {
    hidden = true;
    if (navigator.onLine) resendFailed();
    // An awaited answer may never arrive now. With a contact known, send what waits behind
    // it by beacon rather than lose it; without one, nothing could be sent anyway.
    if (contact) {
      awaited = null;
      drain();
    }
  }

  window.addEventListener("pagehide", leaving);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") leaving();
    else hidden = false;
  });
  window.addEventListener("pageshow", () => {
    hidden = false; // back from the back/forward cache
  });
  window.addEventListener("online", resendFailed);

  // -- start -------------------------------------------------------------------------------

  if (tracked()) contact = readCookie("wp_contact");
  keepContact(); // deletes a contact cookie left from a level that allowed it

  const queued = (window[name] && window[name].q) || [];
  for (const args of queued) track(...args);
  window[name] = track;
})();

/* The Waypost browser tracker: see docs/browser-tracking.md.
 *
 * The page's inline stub defines window[WaypostObject] (default "wp") and queues calls in its
 * `q`; this script replays them in order, then takes the stub's place. It adds no other global.
 * On a page with Ortto's tracking code (window.ap3c), it also answers Ortto's calls
 * (docs/collectors.md): ap3c.cmd.push, ap3c.init, ap3c.track and ap3c.activity.
 */
(() => {
  "use strict";

  const name = window.WaypostObject || "wp";
  // currentScript is set only while this script first runs, which is when it is read.
  const script = document.currentScript || document.querySelector('script[src*="waypost.js"]');
  if (!script) return;
  // The publishable key: the script's data-key, or on a page with Ortto's snippet the key
  // ap3c.init names. Sends wait for it.
  let key = script.getAttribute("data-key") || "";
  const ortto = window.ap3c && typeof window.ap3c === "object" ? window.ap3c : null;
  // The API is wherever the script came from, also when Waypost is served under a path.
  const base = new URL(".", script.src).href;

  const LEVELS = ["none", "essential", "visitor", "all"];
  const YEAR = 365 * 24 * 60 * 60;
  const MAX_FAILED = 100; // a page that can never reach Waypost must not grow without bound
  const PENDING = "wp_pending_consent";

  // Until the page says otherwise the level is "essential": no tracking before a choice. A
  // page with Ortto's snippet tracks as Ortto's does ("visitor"), unless the visitor chose.
  let level = LEVELS.includes(readCookie("wp_cookielevel"))
    ? readCookie("wp_cookielevel")
    : ortto
      ? "visitor"
      : "essential";
  let contact = null;
  // The first agreement, sent without a contact, until its answer names the contact it made:
  // {id, consent}. Kept in a cookie (at "visitor" or "all"), so that the next page sends it
  // again if this one goes away before the answer; the id lets Waypost answer a resend with
  // the same contact instead of making another.
  let pending = null;
  const backlog = []; // calls waiting behind a consent or identify whose answer is awaited
  let awaited = null; // that consent's or identify's answer (a promise)
  const failed = []; // sends that met a network error, sent again when the browser is online
  const keyless = []; // sends made before ap3c.init named the key
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

  // Only at "visitor" or "all" may the contact (or a pending agreement) outlive the page;
  // below, it lives in memory.
  function keepCookies() {
    if (contact && tracked()) writeCookie("wp_contact", contact, YEAR);
    else writeCookie("wp_contact", "", 0);
    if (pending && tracked()) writeCookie(PENDING, JSON.stringify(pending), YEAR);
    else if (readCookie(PENDING) !== null) writeCookie(PENDING, "", 0);
  }

  function readPending() {
    try {
      const value = JSON.parse(readCookie(PENDING));
      if (value && typeof value.id === "string" && typeof value.consent === "string") {
        return { id: value.id, consent: value.consent };
      }
    } catch (malformed) {
      // not written by us: as good as absent
    }
    return null;
  }

  function setContact(answer) {
    if (answer && answer.contact) {
      contact = answer.contact;
      keepCookies();
    }
  }

  // -- sending ---------------------------------------------------------------------------

  // Resolves with the answer's JSON, {error: status} for an error answer, or null for a beacon
  // (which has no answer). A send that could not reach the server resolves only once it is
  // answered, so the calls queued behind a consent wait for the contact it creates.
  const send = (path, body) =>
    new Promise((resolve) => post({ path, body: JSON.stringify(body), resolve }));

  function post(request) {
    if (!key) {
      if (keyless.length < MAX_FAILED) keyless.push(request);
      else request.resolve(null);
      return;
    }
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
      (response) =>
        request.resolve(
          response.ok ? response.json().catch(() => ({})) : { error: response.status },
        ),
      () => {
        if (failed.length < MAX_FAILED) failed.push(request);
        else request.resolve(null);
      },
    );
  }

  const resendFailed = () => failed.splice(0).forEach(post);

  function newId() {
    // An id per activity (and per first agreement) lets the server store a resent one once.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // The pending agreement, sent (again); with a contact meanwhile (one the site's backend
  // made), that contact agrees. It stays pending until an answer that sending again cannot
  // change: none at all (a beacon's), a 429 or a 5xx leave it for the next page.
  function sendPending() {
    const asked = pending;
    const { id, consent } = asked;
    const body = { contact: contact || undefined, consent, agree: true, id };
    return send("consent", body).then((answer) => {
      const again = answer === null || answer.error === 429 || answer.error >= 500;
      if (!again && pending === asked) {
        pending = null;
        keepCookies();
      }
      setContact(answer);
    });
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
      keepCookies();
    },
    consent(options) {
      const agree = options.agree === true;
      if (!options.consent) return;
      if (contact) {
        // The contact is known: the answer adds nothing, so losing it with the page is fine.
        return send("consent", { contact, consent: options.consent, agree }).then(setContact);
      }
      if (agree) {
        // The same agreement still pending (its answer lost, or a 5xx) keeps its id: if it
        // did reach Waypost, this one gets the contact it made.
        if (!pending || pending.consent !== options.consent) {
          pending = { id: newId(), consent: options.consent };
          keepCookies();
        }
        return sendPending();
      }
      // Revoking without a contact has nothing to revoke, and must not create a contact;
      // unless an agreement to it went unanswered: its id finds the contact it may have made.
      if (!pending || pending.consent !== options.consent) return;
      const body = { consent: pending.consent, agree: false, id: pending.id };
      pending = null;
      keepCookies();
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
      // Ortto's form: the type by its id ("act:cm:login": Waypost finds it by code name or
      // alias, with or without "act:cm:"), its attributes as our fields. Ortto's system keys
      // name the visitor: an identify (a claim, never a merge without the site's hash).
      const fields = Object.assign({}, options.attributes);
      const claim = {};
      for (const [name, trait] of Object.entries(SYSTEM_KEYS)) {
        if (name in fields) {
          claim[trait] = fields[name];
          delete fields[name];
        }
      }
      const log = () => logActivity({ type: String(options.activity_id || ""), fields });
      const named = claim.email ? commands.identify(claim) : null;
      return named ? named.then(log) : log();
    },
  };

  const SYSTEM_KEYS = { "str::email": "email", "str::first": "first", "str::last": "last" };

  // ap3c.track: Ortto's page view, naming the visitor when it has an email.
  function orttoTrack(options) {
    const { email, first, last } = options || {};
    const named = email ? commands.identify({ email, first, last }) : null;
    return named ? named.then(commands.pagevisit) : commands.pagevisit();
  }

  function drain() {
    while (!awaited && backlog.length) {
      const [command, options] = backlog.shift();
      let answer;
      if (typeof command === "function") {
        answer = command(); // one of Ortto's calls
      } else if (Object.prototype.hasOwnProperty.call(commands, command)) {
        answer = commands[command](options == null ? {} : options);
      } else {
        // Unknown commands are ignored, so that a page written for a newer tracker still works.
        continue;
      }
      if (answer) wait(answer);
    }
  }

  function wait(answer) {
    awaited = answer;
    answer.then(() => {
      // Unless leaving() stopped waiting for it, and another answer is awaited now.
      if (awaited !== answer) return;
      awaited = null;
      drain();
    });
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

  if (tracked()) {
    contact = readCookie("wp_contact");
    pending = readPending();
  }
  keepCookies(); // deletes cookies left from a level that allowed them
  // An earlier page went away before its agreement was answered: the page's calls wait for
  // the contact that sending it again names.
  if (pending) wait(sendPending());

  // Ortto's snippet queued functions in ap3c.cmd (which call ap3c.init and ap3c.track) and,
  // with its "ap3c.activity" line, activities in ap3c.act: they run now, in that order, and
  // later calls run at once. ap3c.init's second argument (Ortto's address) is not used: the
  // API is wherever this script came from.
  if (ortto) {
    const functions = Array.isArray(ortto.cmd) ? ortto.cmd : [];
    const activities = Array.isArray(ortto.act) ? ortto.act : [];
    ortto.init = (orttoKey) => {
      if (key || typeof orttoKey !== "string" || !orttoKey) return;
      key = orttoKey;
      keyless.splice(0).forEach(post);
    };
    ortto.track = (options) => track(() => orttoTrack(options));
    ortto.activity = (options) => track("activity", options);
    const run = (fn) => {
      try {
        if (typeof fn === "function") fn();
      } catch (error) {
        setTimeout(() => {
          throw error; // the page's error, reported as the page's, without stopping the others
        });
      }
    };
    ortto.cmd = { push: run };
    ortto.act = { push: ortto.activity };
    functions.forEach(run);
    activities.forEach(ortto.activity);
  }

  const queued = (window[name] && window[name].q) || [];
  for (const args of queued) track(...args);
  window[name] = track;
})();

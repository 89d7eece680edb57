/* Evalence: small page behaviours, no framework.
 *
 * - [data-confirm="…"] on a form or its submit button asks before submitting;
 * - [data-copy-target="#id"] copies the target's text (or value) to the clipboard;
 * - [data-dismiss] closes the alert it sits in; select[data-autosubmit] submits its form on change;
 * - Evalence.liveEvents(onEvent) keeps a websocket to /ws/events/ open (reconnecting with backoff) and dispatches
 *   every event as an `evalence:event` CustomEvent on document;
 * - the audit-log page updates its verification result from `audit.verification` events.
 */
(function () {
  "use strict";

  var Evalence = (window.Evalence = window.Evalence || {});

  /* --- confirm dialogs ------------------------------------------------------------------------------------------ */

  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement)) return;
      var submitter = event.submitter;
      var message = (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
      if (message && !window.confirm(message)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  /* --- copy to clipboard ----------------------------------------------------------------------------------------- */

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP fallback (the Clipboard API needs a secure context).
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      try {
        document.execCommand("copy") ? resolve() : reject(new Error("copy refused"));
      } catch (err) {
        reject(err);
      } finally {
        document.body.removeChild(area);
      }
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    event.preventDefault();
    var target = document.querySelector(button.getAttribute("data-copy-target"));
    if (!target) return;
    var text = "value" in target && target.value !== undefined ? target.value : target.textContent;
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    copyText(text.trim()).then(
      function () {
        button.textContent = "Copied";
        button.classList.add("is-copied");
      },
      function () {
        button.textContent = "Select and copy manually";
      }
    );
    window.setTimeout(function () {
      button.textContent = label;
      button.classList.remove("is-copied");
    }, 2000);
  });

  /* --- dismissable alerts and auto-submitting selects -------------------------------------------------------------- */

  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-dismiss]");
    if (!close) return;
    var alert = close.closest(".alert");
    if (alert) alert.remove();
  });

  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select.matches && select.matches("select[data-autosubmit]") && select.form) {
      if (typeof select.form.requestSubmit === "function") select.form.requestSubmit();
      else select.form.submit();
    }
  });

  /* --- live events ------------------------------------------------------------------------------------------------ */

  /**
   * Open the organization's event stream. `onEvent({type, data})` runs for every event; each event is also
   * dispatched on document as `evalence:event` (detail = the event). Options: `onOpen()` runs on every (re)connect,
   * so a page can catch up on what it missed while disconnected. Returns `{close()}`.
   */
  Evalence.liveEvents = function (onEvent, options) {
    options = options || {};
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + window.location.host + "/ws/events/";
    var socket = null;
    var attempt = 0;
    var closed = false;
    var retryTimer = null;
    var pingTimer = null;

    function schedule() {
      if (closed) return;
      // 1 s, 2 s, 4 s … up to 30 s, with jitter so many tabs do not reconnect in step.
      var delay = Math.min(30000, 1000 * Math.pow(2, attempt)) * (0.75 + Math.random() * 0.5);
      attempt += 1;
      retryTimer = window.setTimeout(connect, delay);
    }

    function connect() {
      if (closed) return;
      try {
        socket = new WebSocket(url);
      } catch (err) {
        schedule();
        return;
      }
      socket.addEventListener("open", function () {
        attempt = 0;
        // Keep idle connections alive through proxies that drop silent sockets.
        pingTimer = window.setInterval(function () {
          if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
        }, 25000);
        if (options.onOpen) options.onOpen();
      });
      socket.addEventListener("message", function (message) {
        var event;
        try {
          event = JSON.parse(message.data);
        } catch (err) {
          return;
        }
        if (!event || !event.type || event.type === "pong") return;
        if (onEvent) onEvent(event);
        document.dispatchEvent(new CustomEvent("evalence:event", { detail: event }));
      });
      socket.addEventListener("close", function (event) {
        window.clearInterval(pingTimer);
        // 4403/4404: not signed in or not allowed. Retrying would not change the answer.
        if (event.code === 4403 || event.code === 4404) return;
        schedule();
      });
    }

    connect();
    return {
      close: function () {
        closed = true;
        window.clearTimeout(retryTimer);
        window.clearInterval(pingTimer);
        if (socket) socket.close();
      },
    };
  };

  /**
   * Follow one background job (an import, a test session) on its page: its own websocket (`wsPath`) pushes
   * `eventType` messages; after a drop it reconnects with capped exponential backoff, and while it is down the page
   * polls `statusUrl` every `pollMs` (and every fifth tick anyway when `pollWhileOpen`). Options:
   *   isMine(data) — the message is about this job; isFinished(data); render(data) — every update;
   *   onFinish(data) — once, when the job ends; fromApi(body) — turn the status URL's answer into a message;
   *   catchUpOnOpen — poll once each time the socket opens (when the socket sends no snapshot of its own).
   */
  Evalence.watchJob = function (options) {
    var pollMs = options.pollMs || 3000;
    var fromApi = options.fromApi || function (body) { return body; };
    var done = false;
    var socket = null;
    var socketOpen = false;
    var attempt = 0;
    var pollTimer = null;

    function finish(data) {
      if (done) return;
      done = true;
      options.render(data);
      window.clearInterval(pollTimer);
      if (socket) socket.close();
      window.setTimeout(function () { options.onFinish(data); }, 300);
    }

    function update(data) {
      if (!data || done || !options.isMine(data)) return;
      if (options.isFinished(data)) finish(data);
      else options.render(data);
    }

    function poll() {
      if (done || !options.statusUrl) return;
      fetch(options.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) { update(body ? fromApi(body) : null); })
        .catch(function () {});
    }

    function connect() {
      if (done || !options.wsPath || !("WebSocket" in window)) return;
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      try {
        socket = new WebSocket(scheme + window.location.host + options.wsPath);
      } catch (err) {
        return;
      }
      socket.addEventListener("open", function () {
        socketOpen = true;
        attempt = 0;
        if (options.catchUpOnOpen) poll();
      });
      socket.addEventListener("message", function (message) {
        var event;
        try {
          event = JSON.parse(message.data);
        } catch (err) {
          return;
        }
        if (event && event.type === options.eventType) update(event.data);
      });
      socket.addEventListener("close", function (event) {
        socketOpen = false;
        // 4403/4404: not signed in, or not this organization's job; polling answers the same, so stop here.
        if (done || event.code === 4403 || event.code === 4404) return;
        attempt += 1;
        var wait = Math.min(30000, 1000 * Math.pow(2, attempt - 1));
        window.setTimeout(connect, wait + Math.random() * 250);
      });
    }

    connect();
    var ticks = 0;
    pollTimer = window.setInterval(function () {
      ticks += 1;
      if (!socketOpen || (options.pollWhileOpen && ticks % 5 === 0)) poll();
    }, pollMs);
    if (options.pollWhileOpen || !("WebSocket" in window) || !options.wsPath) poll();
  };

  /* --- audit log: chain verification ------------------------------------------------------------------------------ */

  var FINISHED = { succeeded: true, failed: true, cancelled: true };

  function verificationView(v) {
    if (!FINISHED[v.status]) {
      return { badge: "badge-info", label: v.status === "running" ? "Running" : "Queued", spinner: true,
        summary: "Verifying the chain… this updates when the check finishes." };
    }
    if (v.status === "succeeded" && v.is_intact) {
      return { badge: "badge-success", label: "Intact",
        summary: v.entries_checked === 1 ? "The one entry links and hashes correctly."
          : "All " + v.entries_checked + " entries link and hash correctly." };
    }
    if (v.status === "succeeded") {
      return { badge: "badge-danger", label: "Broken",
        summary: "Checked " + v.entries_checked + (v.entries_checked === 1 ? " entry: " : " entries: ") + (v.problem || "the chain does not hold") + "." };
    }
    return { badge: "badge-warning", label: v.status === "cancelled" ? "Cancelled" : "Failed",
      summary: "The check could not finish" + (v.problem ? ": " + v.problem : "") + "." };
  }

  function renderVerification(block, v) {
    var view = verificationView(v);
    block.setAttribute("data-status", v.status);
    var badge = block.querySelector("[data-field=status]");
    if (badge) {
      badge.className = "badge badge-dot " + view.badge;
      badge.textContent = view.label;
    }
    var spinner = block.querySelector("[data-field=spinner]");
    if (spinner) spinner.hidden = !view.spinner;
    var summary = block.querySelector("[data-field=summary]");
    if (summary) summary.textContent = view.summary;
    var time = block.querySelector("[data-field=time]");
    if (time && FINISHED[v.status]) time.textContent = "Finished just now";
  }

  function watchVerification(block) {
    var id = block.getAttribute("data-verification-id");
    var statusUrl = block.getAttribute("data-status-url");
    if (!id || FINISHED[block.getAttribute("data-status")]) return;

    var stream = Evalence.liveEvents(
      function (event) {
        if (event.type !== "audit.verification" || !event.data || event.data.id !== id) return;
        renderVerification(block, event.data);
        if (FINISHED[event.data.status]) stream.close();
      },
      {
        // The check may have finished before the socket opened: read the row once on every (re)connect.
        onOpen: function () {
          if (!statusUrl) return;
          fetch(statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
            .then(function (response) { return response.ok ? response.json() : null; })
            .then(function (row) {
              if (!row) return;
              renderVerification(block, { id: row.id, status: row.status, is_intact: row.is_intact,
                entries_checked: row.entries_checked, problem: row.problem || row.error });
              if (FINISHED[row.status]) stream.close();
            })
            .catch(function () {});
        },
      }
    );
  }

  document.addEventListener("DOMContentLoaded", function () {
    var block = document.getElementById("audit-verification");
    if (block) watchVerification(block);
  });
})();

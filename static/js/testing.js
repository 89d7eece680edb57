/* Red-team testing pages.
 *
 * 1. Target form ([data-target-form]): fields carry data-kinds="openai_chat http_json …"; only the fields of the
 *    chosen kind are shown. Hidden fields are still posted and the server validates everything.
 * 2. Session page (#session-progress, with data-session-id, data-status, data-ws-path and data-status-url): while the
 *    session is unfinished, the page listens on its websocket (`testing.progress` events, the runner's
 *    progress_payload; the consumer sends the current state on connect) and applies each one to the DOM. After a
 *    drop it reconnects with exponential backoff, and while the socket is down it polls the API
 *    (GET /api/v1/testing/sessions/<id>/) every few seconds. When the session finishes, the summary and the results
 *    table are fetched again once, so the server renders the final figures.
 */
(function () {
  "use strict";

  /* --- target form: fields by kind ------------------------------------------------------------------------------- */

  function toggleKinds(form) {
    var select = form.querySelector('select[name="kind"]');
    if (!select) return;
    var kind = select.value;
    form.querySelectorAll("[data-kinds]").forEach(function (element) {
      var kinds = element.getAttribute("data-kinds").split(/\s+/);
      var box = element.closest(".field") || element;
      box.hidden = kinds.indexOf(kind) === -1;
    });
  }

  function watchTargetForm(form) {
    var select = form.querySelector('select[name="kind"]');
    if (!select) return;
    select.addEventListener("change", function () { toggleKinds(form); });
    toggleKinds(form);
  }

  /* --- session page: live progress ------------------------------------------------------------------------------ */

  var FINISHED = { completed: true, failed: true, cancelled: true };
  var STATUS = {
    queued: ["badge-info", "Queued"],
    running: ["badge-info", "Running"],
    completed: ["badge-success", "Completed"],
    failed: ["badge-danger", "Failed"],
    cancelled: ["badge-warning", "Cancelled"],
  };
  var POLL_MS = 3000;

  function setText(root, selector, text) {
    var element = root.querySelector(selector);
    if (element) element.textContent = text;
  }

  function duration(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds) || seconds < 0) return "—";
    seconds = Math.round(seconds);
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + (seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function renderFindings(list, findings) {
    if (!list || !findings || !findings.length) return; // keep what the server rendered until there is news
    var template = list.getAttribute("data-result-url") || "";
    while (list.firstChild) list.removeChild(list.firstChild);
    findings
      .slice()
      .reverse()
      .forEach(function (finding) {
        var item = document.createElement("li");
        var link = document.createElement("a");
        link.href = template.replace("00000000-0000-0000-0000-000000000000", encodeURIComponent(finding.id));
        var text = String(finding.prompt_text || "");
        link.textContent = text.length > 160 ? text.slice(0, 159) + "…" : text;
        var sub = document.createElement("span");
        sub.className = "cell-sub";
        sub.textContent =
          String(finding.category || "") +
          (finding.mutator ? " · " + finding.mutator : "") +
          (finding.reason ? " — " + finding.reason : "");
        item.appendChild(link);
        item.appendChild(sub);
        list.appendChild(item);
      });
  }

  function render(block, data) {
    var total = Number(data.total_samples) || 0;
    var done = Number(data.completed_samples) || 0;
    setText(block, "[data-field=completed]", String(done));
    setText(block, "[data-field=total]", String(total));
    var bar = block.querySelector("[data-field=progress]");
    if (bar) {
      bar.max = total || 1;
      bar.value = Math.min(done, total || 1);
    }
    var percent = total ? Math.min(100, Math.round((100 * done) / total)) : 0;
    setText(block, "[data-field=percent]", percent + "%");
    var counts = data.counts || {};
    block.querySelectorAll("[data-count]").forEach(function (cell) {
      var value = counts[cell.getAttribute("data-count")];
      cell.textContent = String(typeof value === "number" ? value : 0);
    });
    if (typeof data.attack_success_rate === "number") {
      setText(block, "[data-field=asr]", (data.attack_success_rate * 100).toFixed(1) + "%");
    }
    setText(block, "[data-field=rate]", typeof data.rate_per_s === "number" ? data.rate_per_s + "/s" : "—");
    setText(block, "[data-field=eta]", FINISHED[data.status] ? "—" : duration(data.eta_s));
    var badge = block.querySelector("[data-field=status]");
    var view = STATUS[data.status];
    if (badge && view) {
      badge.className = "badge badge-dot " + view[0];
      badge.textContent = view[1];
    }
    block.setAttribute("data-status", data.status || "");
    if (FINISHED[data.status]) {
      var spinner = block.querySelector("[data-field=spinner]");
      if (spinner) spinner.remove();
    }
    renderFindings(document.querySelector("[data-field=findings]"), data.latest_findings);
  }

  /* The API's session shape, as the live event's: progress figures live under `progress` there. */
  function fromApi(body) {
    if (!body) return null;
    var progress = body.progress || {};
    return {
      id: body.id,
      status: body.status,
      total_samples: body.total_samples,
      completed_samples: body.completed_samples,
      counts: progress.counts || body.counts || {},
      attack_success_rate: progress.attack_success_rate,
      rate_per_s: progress.rate_per_s,
      eta_s: progress.eta_s,
      latest_findings: [],
      error: body.error,
    };
  }

  /* Fetch the page once more and swap in the server's final summary, results, findings and actions. */
  function refreshFinished() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ["#session-summary", "#latest-findings", ".page-actions", "#session-progress"].forEach(function (selector) {
          var current = document.querySelector(selector);
          var next = fresh.querySelector(selector);
          if (current && next) current.innerHTML = next.innerHTML;
        });
      })
      .catch(function () {
        window.location.reload();
      });
  }

  function watchSession(block) {
    var sessionId = block.getAttribute("data-session-id");
    if (!sessionId || FINISHED[block.getAttribute("data-status")]) return;
    // The socket sends the session's current figures on every (re)connect, so polling is only for when it is down.
    Evalence.watchJob({
      wsPath: block.getAttribute("data-ws-path"),
      statusUrl: block.getAttribute("data-status-url"),
      eventType: "testing.progress",
      pollMs: POLL_MS,
      fromApi: fromApi,
      isMine: function (data) { return String(data.id) === sessionId; },
      isFinished: function (data) { return FINISHED[data.status]; },
      render: function (data) { render(block, data); },
      onFinish: refreshFinished,
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-target-form]").forEach(watchTargetForm);
    var block = document.getElementById("session-progress");
    if (block) watchSession(block);
  });
})();

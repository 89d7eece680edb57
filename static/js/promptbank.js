/* Prompt bank pages: live counts of an ingestion run.
 *
 * The run page's #ingestion-run block carries data-run-id, data-status, data-ws-path and data-status-url. While the
 * run is unfinished, the page listens on its websocket (the job sends `ingestion.progress` events to it) and, as a
 * fallback for when the socket is down or never opens (no Channels server, a proxy that drops it), polls the status
 * URL. When the run finishes, the page reloads once so the server renders the final counts and the errors by line.
 */
(function () {
  "use strict";

  var FINISHED = { succeeded: true, failed: true, cancelled: true };
  var STATUS = {
    queued: ["badge-info", "Queued"],
    running: ["badge-info", "Running"],
    succeeded: ["badge-success", "Finished"],
    failed: ["badge-danger", "Failed"],
    cancelled: ["badge-warning", "Cancelled"],
  };
  var COUNTS = ["received", "accepted", "duplicates", "near_duplicates", "rejected"];
  var POLL_MS = 2000;

  function render(block, data) {
    COUNTS.forEach(function (name) {
      var cell = block.querySelector('[data-count="' + name + '"]');
      if (cell && typeof data[name] === "number") cell.textContent = String(data[name]);
    });
    var lines = block.querySelector("[data-field=lines]");
    if (lines && typeof data.lines_done === "number") {
      lines.textContent = data.lines_done.toLocaleString() + (data.lines_done === 1 ? " record done" : " records done");
    }
    var badge = block.querySelector("[data-field=status]");
    var view = STATUS[data.status];
    if (badge && view) {
      badge.className = "badge badge-dot " + view[0];
      badge.textContent = view[1];
    }
  }

  function watchRun(block) {
    var runId = block.getAttribute("data-run-id");
    var statusUrl = block.getAttribute("data-status-url");
    var wsPath = block.getAttribute("data-ws-path");
    if (!runId || FINISHED[block.getAttribute("data-status")]) return;

    var done = false;
    var socket = null;
    var socketOpen = false;
    var attempt = 0;
    var pollTimer = null;

    function finish(data) {
      if (done) return;
      done = true;
      render(block, data);
      window.clearInterval(pollTimer);
      if (socket) socket.close();
      // The errors by line and the timing are rendered by the server: show the finished page.
      window.setTimeout(function () { window.location.reload(); }, 300);
    }

    function update(data) {
      if (!data || String(data.run_id) !== runId || done) return;
      if (FINISHED[data.status]) finish(data);
      else render(block, data);
    }

    function poll() {
      if (done || !statusUrl) return;
      fetch(statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(update)
        .catch(function () {});
    }

    function connect() {
      if (done || !wsPath || !("WebSocket" in window)) return;
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      try {
        socket = new WebSocket(scheme + window.location.host + wsPath);
      } catch (err) {
        return;
      }
      socket.addEventListener("open", function () {
        socketOpen = true;
        attempt = 0;
        poll(); // catch up on whatever happened before the socket opened
      });
      socket.addEventListener("message", function (message) {
        var event;
        try {
          event = JSON.parse(message.data);
        } catch (err) {
          return;
        }
        if (event && event.type === "ingestion.progress") update(event.data);
      });
      socket.addEventListener("close", function (event) {
        socketOpen = false;
        // 4403/4404: not signed in or not this organization's run; polling answers the same, so stop here.
        if (done || event.code === 4403 || event.code === 4404) return;
        attempt += 1;
        window.setTimeout(connect, Math.min(30000, 1000 * Math.pow(2, attempt)));
      });
    }

    connect();
    // Poll often while the socket is not open, and now and then even when it is (a missed event costs nothing).
    var ticks = 0;
    pollTimer = window.setInterval(function () {
      ticks += 1;
      if (!socketOpen || ticks % 5 === 0) poll();
    }, POLL_MS);
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var block = document.getElementById("ingestion-run");
    if (block) watchRun(block);
  });
})();

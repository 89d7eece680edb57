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
    if (!runId || FINISHED[block.getAttribute("data-status")]) return;
    Evalence.watchJob({
      wsPath: block.getAttribute("data-ws-path"),
      statusUrl: block.getAttribute("data-status-url"),
      eventType: "ingestion.progress",
      pollMs: POLL_MS,
      pollWhileOpen: true, // a missed event costs nothing
      catchUpOnOpen: true, // catch up on whatever happened before the socket opened
      isMine: function (data) { return String(data.run_id) === runId; },
      isFinished: function (data) { return FINISHED[data.status]; },
      render: function (data) { render(block, data); },
      // The errors by line and the timing are rendered by the server: show the finished page.
      onFinish: function () { window.location.reload(); },
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var block = document.getElementById("ingestion-run");
    if (block) watchRun(block);
  });
})();

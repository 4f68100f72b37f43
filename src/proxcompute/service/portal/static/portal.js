// proxcompute portal: progressive enhancement only (every page works without JavaScript).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Ctrl+Enter (Cmd+Enter) in the query editor presses "Run".
  const query = document.getElementById("query");
  if (query) {
    query.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        document.getElementById("run").click();
      }
    });
  }
  // An example link fills the editor in place (the link itself works without JavaScript).
  for (const link of document.querySelectorAll("#examples a[data-query]")) {
    link.addEventListener("click", (ev) => {
      if (!query) return;
      ev.preventDefault();
      query.value = link.dataset.query;
      query.focus();
    });
  }
  // A running job's page follows its phase and progress, and reloads when it ends.
  const status = document.getElementById("job-status");
  if (status && status.dataset.active === "yes") {
    const poll = async () => {
      try {
        const r = await fetch(status.dataset.statusUrl, { credentials: "same-origin" });
        if (r.ok) {
          const s = await r.json();
          document.getElementById("phase").textContent = s.phase;
          if (s.total) {
            document.getElementById("progress").textContent = `${s.done || 0} / ${s.total} partitions`;
          }
          if (s.run_seconds !== null) {
            document.getElementById("run-time").textContent = `${s.run_seconds.toFixed(2)} s`;
          }
          if (!s.active) { window.location.reload(); return; }
        }
      } catch (e) { /* the next poll tries again */ }
      setTimeout(poll, 1000);
    };
    setTimeout(poll, 500);
  }
  // The job list refreshes while any of its jobs is still active.
  const jobs = document.getElementById("jobs");
  if (jobs && jobs.dataset.poll === "yes") {
    setTimeout(() => window.location.reload(), 2000);
  }
});

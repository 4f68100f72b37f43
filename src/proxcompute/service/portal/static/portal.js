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
  // A running job's page and the job list follow their active jobs' phase and progress (the
  // status JSON, once a second); a page reloads only when one of its jobs ends, to show its
  // result and the actions that fit, so focus is not lost while jobs run.
  const follow = (url, show, whenDone) => {
    const poll = async () => {
      try {
        const r = await fetch(url, { credentials: "same-origin" });
        if (r.ok) {
          const s = await r.json();
          show(s);
          if (!s.active) { whenDone(); return; }
        }
      } catch (e) { /* the next poll tries again */ }
      setTimeout(poll, 1000);
    };
    setTimeout(poll, 500);
  };
  const progressText = (s) =>
    s.total ? `${s.done || 0} / ${s.total} partitions${s.pace ? `, ${s.pace}` : ""}` : "";
  const runTime = (s, digits) => (s.run_seconds === null ? "" : `${s.run_seconds.toFixed(digits)} s`);
  const status = document.getElementById("job-status");
  if (status && status.dataset.active === "yes") {
    follow(status.dataset.statusUrl, (s) => {
      document.getElementById("phase").textContent = s.phase;
      document.getElementById("progress").textContent = progressText(s);
      document.getElementById("run-time").textContent = runTime(s, 2);
    }, () => window.location.reload());
  }
  for (const row of document.querySelectorAll("#jobs tr[data-active='yes']")) {
    follow(row.dataset.statusUrl, (s) => {
      row.querySelector(".phase").textContent = s.phase;
      row.querySelector(".progress-cell").textContent = progressText(s);
      row.querySelector(".run-time").textContent = runTime(s, 1);
    }, () => window.location.reload());
  }
});

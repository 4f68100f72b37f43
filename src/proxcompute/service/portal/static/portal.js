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
  const completions = document.getElementById("completions");
  if (query && completions) completeIn(query, JSON.parse(completions.textContent));
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

// Completion in the query editor: the tables the visitor may read, their columns (those of the
// tables the query names first, through their aliases after a dot) and ADQL's words and
// functions, from the page's own list (no request per key). The list is an ARIA listbox:
// ArrowDown/ArrowUp choose, Tab or Enter takes, Escape closes.
function completeIn(query, data) {
  const tables = data.tables;
  const names = Object.keys(tables);
  const list = document.createElement("ul");
  list.id = "completion-list";
  list.className = "completions";
  list.setAttribute("role", "listbox");
  list.setAttribute("aria-label", "Completions");
  list.hidden = true;
  query.insertAdjacentElement("afterend", list);
  query.setAttribute("aria-autocomplete", "list");
  query.setAttribute("aria-controls", list.id);
  let items = [];
  let active = 0;
  let start = 0;

  const lower = (x) => x.toLowerCase();
  const shortName = (t) => t.split(".").pop();
  // table name or alias -> table, from FROM/JOIN clauses ("FROM survey.gaia AS g", "JOIN t u")
  const named = (text) => {
    const found = new Map();
    const clause = /\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)(?:\s+(?:AS\s+)?([A-Za-z_]\w*))?/gi;
    for (const m of text.matchAll(clause)) {
      const table = names.find((t) => lower(t) === lower(m[1]) || lower(shortName(t)) === lower(m[1]));
      if (!table) continue;
      found.set(lower(m[1]), table);
      found.set(lower(shortName(table)), table);
      const alias = m[2] && !/^(WHERE|JOIN|ON|USING|LEFT|INNER|GROUP|ORDER|WITH|AS)$/i.test(m[2]) ? m[2] : null;
      if (alias) found.set(lower(alias), table);
    }
    return found;
  };
  const candidates = (word) => {
    const w = lower(word);
    const out = new Set();
    const used = named(query.value);
    for (const t of names) if (lower(t).startsWith(w) || lower(shortName(t)).startsWith(w)) out.add(t);
    const dot = word.lastIndexOf(".");
    if (dot > 0) {  // alias.column
      const table = used.get(lower(word.slice(0, dot)));
      const tail = w.slice(dot + 1);
      if (table) for (const c of tables[table]) if (lower(c).startsWith(tail)) out.add(word.slice(0, dot + 1) + c);
    } else {
      const scope = used.size ? [...new Set(used.values())] : names;
      for (const t of scope) for (const c of tables[t]) if (lower(c).startsWith(w)) out.add(c);
      for (const k of data.words) if (lower(k).startsWith(w)) out.add(k);
    }
    out.delete(word);
    return [...out].slice(0, 12);
  };
  const close = () => {
    list.hidden = true;
    items = [];
    query.removeAttribute("aria-activedescendant");
  };
  const highlight = (i) => {
    active = (i + items.length) % items.length;
    list.querySelectorAll("li").forEach((li, k) => li.setAttribute("aria-selected", String(k === active)));
    query.setAttribute("aria-activedescendant", `completion-${active}`);
  };
  const take = (i) => {
    const text = items[i];
    const end = query.selectionStart;
    query.setRangeText(text, start, end, "end");
    close();
    query.focus();
  };
  const open = () => {
    const before = query.value.slice(0, query.selectionStart);
    const m = before.match(/[A-Za-z_][\w.]*$/);
    if (!m || query.selectionStart !== query.selectionEnd) return close();
    items = candidates(m[0]);
    if (!items.length) return close();
    start = query.selectionStart - m[0].length;
    list.replaceChildren(...items.map((text, k) => {
      const li = document.createElement("li");
      li.id = `completion-${k}`;
      li.setAttribute("role", "option");
      li.textContent = text;
      li.addEventListener("mousedown", (ev) => { ev.preventDefault(); take(k); });
      return li;
    }));
    list.hidden = false;
    highlight(0);
  };
  query.addEventListener("input", open);
  query.addEventListener("blur", close);
  query.addEventListener("keydown", (ev) => {
    if (list.hidden) return;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      highlight(active + (ev.key === "ArrowDown" ? 1 : -1));
    } else if ((ev.key === "Tab" || ev.key === "Enter") && !ev.ctrlKey && !ev.metaKey && !ev.shiftKey) {
      ev.preventDefault();
      take(active);
    } else if (ev.key === "Escape") {
      ev.preventDefault();
      close();
    }
  });
}

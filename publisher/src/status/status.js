// Keeps the tables of /status current from /status.json, every 2 seconds.
// Every value goes into the page as text (textContent), never as markup.
"use strict";

(function () {
  const PERIOD_MS = 2000;

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) {
      td.className = className;
    }
    row.appendChild(td);
    return td;
  }

  function ago(now, t) {
    if (t === null || t === undefined) {
      return "never";
    }
    return Math.max(0, now - t) + " s ago";
  }

  function behind(s) {
    if (s.behind_seconds === null) {
      return "";
    }
    if (s.versions_behind === 0) {
      return "0";
    }
    const versions = s.versions_behind === null ? "?" : String(s.versions_behind);
    return versions + " (" + s.behind_seconds + " s)";
  }

  function ticketSection(report, t) {
    const section = document.createElement("section");
    section.className = "ticket";
    const h2 = document.createElement("h2");
    const p = t.published;
    h2.textContent = "Ticket " + t.ticket + ": " +
      (p ? "version " + p.version + ", " + p.digest + ", term " + (p.term === null ? "none" : p.term)
         : "not published here");
    section.appendChild(h2);
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    for (const h of ["site", "state", "applied", "behind", "drift", "pending", "last seen", "error"]) {
      const th = document.createElement("th");
      th.textContent = h;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const s of t.sites) {
      const row = body.insertRow();
      row.className = "site " + s.state;
      row.dataset.site = s.site;
      cell(row, s.site + (s.allowed ? "" : " (not on the allow-list)"));
      const st = cell(row, "");
      const span = document.createElement("span");
      span.className = "state " + s.state;
      span.textContent = s.state;
      st.appendChild(span);
      cell(row, s.applied && s.applied.version ? s.applied.version : "");
      cell(row, behind(s));
      cell(row, String(s.drift));
      cell(row, s.pending ? "yes" : "no");
      cell(row, s.connected ? "connected" : ago(report.at, s.last_seen));
      cell(row, s.error === null ? "" : s.error, "error-text");
    }
    section.appendChild(table);
    return section;
  }

  function render(report) {
    document.documentElement.dataset.updated = String(report.at);
    document.getElementById("site").textContent = report.site;
    const summary = document.getElementById("summary");
    summary.textContent = report.in_step ? "Every site in step." : "Not every site in step.";
    summary.className = report.in_step ? "ok" : "bad";
    const main = document.getElementById("tickets");
    main.replaceChildren(...report.tickets.map((t) => ticketSection(report, t)));
  }

  async function refresh() {
    try {
      const response = await fetch("/status.json", { cache: "no-store" });
      if (response.ok) {
        render(await response.json());
      }
    } catch (e) {
      // The daemon restarting: the next round tries again.
    }
  }

  refresh();
  setInterval(refresh, PERIOD_MS);
})();

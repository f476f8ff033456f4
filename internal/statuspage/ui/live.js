// Nemesis status pages: keeps the sections marked data-live up to date by
// reloading the page's own URL (data-refresh) every data-refresh-ms, and
// opens the decision a chart dot points at. The page reads the same
// without this script.
"use strict";
(function () {
  const body = document.body;
  const url = body.dataset.refresh;
  const every = Number(body.dataset.refreshMs) || 2000;

  // open shows the record with the given id, as a click on its dot asks.
  function open(id, scroll) {
    const d = document.getElementById(id);
    if (!d) return;
    document.querySelectorAll("details.picked").forEach((e) => e.classList.remove("picked"));
    d.open = true;
    d.classList.add("picked");
    if (scroll) d.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("click", (ev) => {
    const a = ev.target.closest && ev.target.closest("a.dot-link");
    if (!a) return;
    ev.preventDefault();
    const id = a.dataset.record;
    history.replaceState(null, "", "#" + id);
    open(id, true);
  });
  if (location.hash.length > 1) open(decodeURIComponent(location.hash.slice(1)), true);

  async function refresh() {
    if (document.hidden || !url) return;
    let text;
    try {
      const r = await fetch(url, { cache: "no-store", headers: { Accept: "text/html" } });
      if (!r.ok && r.status !== 404) return;
      text = await r.text();
    } catch (e) {
      body.classList.add("stale");
      return;
    }
    body.classList.remove("stale");
    const doc = new DOMParser().parseFromString(text, "text/html");
    // What is open stays open, what is picked stays picked.
    const opened = new Set([...document.querySelectorAll("details[open]")].map((d) => d.id));
    const picked = document.querySelector("details.picked");
    document.querySelectorAll("[data-live]").forEach((old) => {
      const fresh = doc.getElementById(old.id);
      if (fresh) old.replaceWith(document.adoptNode(fresh));
    });
    opened.forEach((id) => { const d = document.getElementById(id); if (d) d.open = true; });
    if (picked) { const d = document.getElementById(picked.id); if (d) d.classList.add("picked"); }
    const foot = doc.querySelector("footer");
    if (foot) document.querySelector("footer").replaceWith(document.adoptNode(foot));
    body.dataset.refreshed = String(Date.now());
  }
  setInterval(refresh, every);
})();

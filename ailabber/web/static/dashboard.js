// ailabber's dashboards: the page fetches itself again every few seconds and swaps in
// its live part (#live), and a followed log (#log) fetches only its new bytes.  Shipped
// with ailabber; the page allows no other script (Content-Security-Policy).
"use strict";
(function () {
  const every = 1000 * (parseFloat(document.body.dataset.refresh) || 5);
  const updated = document.getElementById("updated");

  function say(text, trouble) {
    if (!updated) return;
    updated.textContent = text;
    updated.classList.toggle("trouble", !!trouble);
  }

  // Ticked boxes (the runs picked for comparison) survive the swap.
  function ticked(root) {
    return new Set(Array.from(root.querySelectorAll("input[type=checkbox]:checked"), (b) => b.name + "=" + b.value));
  }

  async function refresh() {
    try {
      const answer = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
      if (answer.status === 403) {
        say("this dashboard was restarted: open the new URL its command printed", true);
        return;
      }
      if (!answer.ok) {
        say("refresh failed: HTTP " + answer.status, true);
        return;
      }
      const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
      const live = document.getElementById("live");
      const next = fresh.getElementById("live");
      if (live && next) {
        const keep = ticked(live);
        // A copy of the list first: adopting a node takes it out of next.childNodes.
        live.replaceChildren(...Array.from(next.childNodes).map((n) => document.adoptNode(n)));
        for (const box of live.querySelectorAll("input[type=checkbox]")) {
          if (keep.has(box.name + "=" + box.value)) box.checked = true;
        }
      }
      const stamp = fresh.getElementById("updated");
      say(stamp ? stamp.textContent : "", false);
    } catch (e) {
      say("the dashboard does not answer (stopped?)", true);
    }
  }

  const log = document.getElementById("log");
  async function follow() {
    try {
      const at = log.dataset.offset || "0";
      const answer = await fetch(log.dataset.src + "?offset=" + encodeURIComponent(at),
        { credentials: "same-origin", cache: "no-store" });
      if (!answer.ok) return;
      const text = await answer.text();
      const next = answer.headers.get("X-Next-Offset");
      if (next !== null) log.dataset.offset = next;
      if (text) {
        const bottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.append(document.createTextNode(text));
        if (bottom) log.scrollTop = log.scrollHeight;
      }
    } catch (e) {
      // the refresh of the page says that the dashboard is gone
    }
  }

  if (log) log.scrollTop = log.scrollHeight;
  setInterval(refresh, every);
  if (log && log.dataset.src) setInterval(follow, Math.min(every, 2000));
})();

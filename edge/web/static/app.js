// facegate's page script: local times, a question before removals, events kept fresh.
// The page works without it; nothing here is loaded from anywhere but the daemon.
"use strict";
(function () {
  const REFRESH_MS = 10000; // the events list; the rest changes only when someone acts

  function localTimes(root) {
    root.querySelectorAll("time[data-time]").forEach(function (el) {
      const when = new Date(parseFloat(el.dataset.time) * 1000);
      if (!isNaN(when)) el.textContent = when.toLocaleString();
    });
  }

  function eventItem(e) {
    const li = document.createElement("li");
    li.className = "event " + e.event;
    const pic = e.face ? document.createElement("img") : document.createElement("span");
    if (e.face) { pic.src = e.face; pic.alt = "face"; pic.width = 48; pic.height = 48; }
    else pic.className = "noface";
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = e.event + (e.person ? ": " + e.person : "");
    const when = document.createElement("time");
    when.className = "when";
    when.dataset.time = e.time;
    const cam = document.createElement("span");
    cam.className = "quiet";
    cam.textContent = e.camera;
    li.append(pic, what, when, cam);
    return li;
  }

  function refresh() {
    const list = document.getElementById("event-list");
    if (!list || document.hidden) return;
    fetch("/api/events?limit=30", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        list.replaceChildren.apply(list, data.events.map(eventItem));
        localTimes(list);
      })
      .catch(function () {});
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.querySelectorAll("form.confirm").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
      });
    });
    setInterval(refresh, REFRESH_MS);
  });
})();

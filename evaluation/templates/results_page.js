// The results page's behaviour: sortable tables, the filter, and one clock per shot for its videos.
// Plain DOM code, no library: the page must open from disk with nothing else.
(function () {
  "use strict";

  // ---- Sorting: a header's button sorts its table's rows by that column's data-sort values.
  function compare(a, b, type) {
    if (type !== "number") return a.localeCompare(b);
    const x = parseFloat(a), y = parseFloat(b);
    return (x > y) - (x < y);  // not x - y: Infinity - Infinity is NaN
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    const heads = Array.from(table.tHead.rows[0].cells);
    heads.forEach(function (head, index) {
      const button = head.querySelector("button");
      if (!button) return;
      button.addEventListener("click", function () {
        // best first on the first click (lower is better for some metrics), the other way on the next
        const first = head.dataset.type === "text" || head.dataset.better === "lower" ? "ascending" : "descending";
        const other = first === "ascending" ? "descending" : "ascending";
        const order = head.getAttribute("aria-sort") === first ? other : first;
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        head.setAttribute("aria-sort", order);
        const sign = order === "ascending" ? 1 : -1;
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        rows.sort(function (r, s) {
          const a = r.cells[index].dataset.sort || "", b = s.cells[index].dataset.sort || "";
          if (head.dataset.type === "number" && (a === "" || b === "")) return (a === "") - (b === "");  // n/a last
          return sign * compare(a, b, head.dataset.type);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });

  // ---- Filter: any element tagged data-scene / data-style / data-method is hidden when its tag differs.
  const selects = Array.from(document.querySelectorAll("select[data-filter]"));
  const tagged = Array.from(document.querySelectorAll("main [data-scene], main [data-style], main [data-method]"));
  const shots = Array.from(document.querySelectorAll("article.shot"));
  function applyFilter() {
    const wanted = selects.filter(function (s) { return s.value; });
    tagged.forEach(function (element) {
      element.hidden = wanted.some(function (s) {
        const tag = element.dataset[s.dataset.filter];
        return tag !== undefined && tag !== s.value;
      });
      if (element.hidden) element.querySelectorAll("video").forEach(function (v) { v.pause(); });
    });
    const shown = shots.filter(function (s) { return !s.hidden; }).length;
    const count = document.getElementById("filter-count");
    if (count) count.textContent = shown + " of " + shots.length + " shots shown";
    const nothing = document.getElementById("nothing-shown");
    if (nothing) nothing.hidden = shown > 0 || shots.length === 0;
  }
  selects.forEach(function (s) { s.addEventListener("change", applyFilter); });
  if (selects.length) applyFilter();

  // ---- One clock per shot: a play button and a scrubber drive every video of the row; the first shown video
  // leads and the others follow it within a frame. Videos load only once their row is near the screen.
  shots.forEach(function (shot) {
    const videos = Array.from(shot.querySelectorAll("video"));
    const button = shot.querySelector("button.play");
    const scrub = shot.querySelector("input.scrub");
    const clock = shot.querySelector(".clock");
    const edge = shot.querySelector("img.edge-now");
    const fps = parseFloat(shot.dataset.fps) || 8;
    let playing = false, drawn = -1;
    if (!videos.length) { button.disabled = true; scrub.disabled = true; return; }

    function shown() { return videos.filter(function (v) { return !v.closest("[hidden]"); }); }
    function leader() { return shown()[0] || videos[0]; }
    function duration() {
      const known = videos.map(function (v) { return v.duration; }).filter(isFinite);
      return known.length ? Math.max.apply(null, known) : 0;
    }
    function load() {
      videos.forEach(function (v) { if (v.preload !== "auto") { v.preload = "auto"; v.load(); } });
    }
    function draw(time) {
      const total = duration();
      if (total) scrub.value = String(time / total);
      const frame = Math.max(0, Math.floor(time * fps + 1e-3));
      if (frame === drawn) return;
      drawn = frame;
      clock.textContent = "frame " + frame + " · " + time.toFixed(2) + " s";
      if (edge) {
        const last = parseInt(edge.dataset.count, 10) - 1;
        const name = String(Math.min(frame, last)).padStart(parseInt(edge.dataset.digits, 10), "0");
        edge.src = edge.dataset.folder + name + ".png";
      }
    }
    function seek(time) {
      videos.forEach(function (v) { v.currentTime = isFinite(v.duration) ? Math.min(time, v.duration) : time; });
      draw(time);
    }
    function setPlaying(on) {
      playing = on;
      button.textContent = on ? "❚❚ Pause" : "▶ Play";
      if (on) requestAnimationFrame(follow);
    }
    function follow() {  // while playing: keep the others on the leader's time, move the scrubber and edge map
      if (!playing) return;
      const lead = leader(), time = lead.currentTime;
      shown().forEach(function (v) {
        if (v !== lead && !v.ended && Math.abs(v.currentTime - time) > 1 / fps) v.currentTime = time;
      });
      draw(time);
      requestAnimationFrame(follow);
    }
    button.addEventListener("click", function () {
      load();
      if (playing) {
        videos.forEach(function (v) { v.pause(); });
        setPlaying(false);
        return;
      }
      const lead = leader();
      const total = duration();
      seek(lead.ended || (total && lead.currentTime >= total - 1e-3) ? 0 : lead.currentTime);
      setPlaying(true);
      shown().forEach(function (v) {
        v.play().catch(function () { /* paused again before it started: nothing to do */ });
      });
    });
    scrub.addEventListener("input", function () {
      load();
      seek(parseFloat(scrub.value) * duration());
    });
    videos.forEach(function (v) {
      v.addEventListener("ended", function () {
        if (shown().every(function (s) { return s.ended || s.paused; })) setPlaying(false);
      });
    });

    if ("IntersectionObserver" in window) {
      const observer = new IntersectionObserver(function (entries) {
        if (entries.some(function (e) { return e.isIntersecting; })) { load(); observer.disconnect(); }
      }, { rootMargin: "300px" });
      observer.observe(shot);
    } else {
      load();
    }
  });
})();

// salespulse dashboard: fetches /dashboard/data (the HttpOnly session cookie rides along, the token never
// does) every 30 s, places the server's ready-made strings as text (never as HTML), draws the hourly chart
// as SVG, and says when the figures are stale or the server cannot be reached.
"use strict";

(() => {
  const REFRESH_MS = 30000;
  const STALE_MS = 75000;     // two refreshes missed
  const TIMEOUT_MS = 10000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  let lastOk = 0;             // Date.now() of the last good answer
  let inFlight = false;
  let signedOut = false;
  let problem = "";           // "", "offline", "error"

  function setText(id, text) {
    const el = $(id);
    if (el) el.textContent = text === null || text === undefined || text === "" ? "—" : String(text);
  }

  function show(section) {
    $("signin").hidden = section !== "signin";
    $("dash").hidden = section !== "dash";
  }

  function setStatus(kind, text) {
    const el = $("status");
    el.className = "pill " + kind;
    el.textContent = text;
  }

  function setBanner(text, bad) {
    const el = $("banner");
    el.hidden = !text;
    el.textContent = text || "";
    el.classList.toggle("bad", Boolean(bad));
  }

  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    return Math.floor(s / 3600) + " h ago";
  }

  function svg(tag, attrs, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function drawChart(chart) {
    const root = $("chart");
    for (const el of Array.from(root.querySelectorAll(".plot"))) el.remove();
    const plot = svg("g", { class: "plot" });
    root.appendChild(plot);
    if (!chart) {
      setText("chart-sub", "");
      $("chart-note").textContent = "Couldn't load the hourly figures.";
      return;
    }
    // One SVG unit per CSS pixel, so labels keep their size on a phone and on a wide screen alike.
    const W = Math.max(200, Math.round(root.getBoundingClientRect().width) || 320), H = 170;
    const left = 2, right = 2, top = 18, bottom = 22;
    root.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const bars = chart.bars;
    const max = Math.max(1, ...bars.map((b) => b.revenue));
    const step = (W - left - right) / Math.max(1, bars.length);
    const height = H - top - bottom;
    plot.appendChild(svg("line", { class: "axis", x1: left, x2: W - right, y1: H - bottom, y2: H - bottom }));
    plot.appendChild(svg("text", { x: left, y: 11 }, "max " + chart.max));
    bars.forEach((b, i) => {
      const h = b.revenue > 0 ? Math.max(2, (b.revenue / max) * height) : 0;
      const rect = svg("rect", {
        class: i === bars.length - 1 ? "bar now" : "bar",
        x: (left + i * step + step * 0.12).toFixed(2), y: (H - bottom - h).toFixed(2),
        width: (step * 0.76).toFixed(2), height: h.toFixed(2), rx: 1.5,
        "data-hour": b.hour, "data-revenue": b.revenue,
      });
      rect.appendChild(svg("title", {}, b.text));
      plot.appendChild(rect);
      const last = i === bars.length - 1;
      if ((i % 6 === 0 && bars.length - i > 3) || last) {
        const anchor = i === 0 ? "start" : last ? "end" : "middle";
        const x = i === 0 ? left : last ? W - right : left + i * step + step / 2;
        plot.appendChild(svg("text", { x: x.toFixed(2), y: H - 6, "text-anchor": anchor }, b.label));
      }
    });
    const total = bars.reduce((n, b) => n + b.orders, 0);
    $("chart-desc").textContent =
      `Revenue per hour over the last 24 hours in ${chart.currency}: ${chart.total} from ${total} orders`;
    setText("chart-sub", `· 24 h · ${chart.total}`);
    $("chart-note").textContent = chart.note || "";
  }

  function listItem(level, what, detail) {
    const li = document.createElement("li");
    const dot = document.createElement("span");
    dot.className = "dot " + level;
    const body = document.createElement("span");
    const strong = document.createElement("span");
    strong.className = "what";
    strong.textContent = what;
    body.appendChild(strong);
    if (detail) {
      const small = document.createElement("span");
      small.className = "detail";
      small.textContent = detail;
      body.appendChild(small);
    }
    li.append(dot, body);
    return li;
  }

  function drawAlerts(alerts) {
    const ul = $("alerts");
    ul.replaceChildren();
    if (alerts === null) {
      ul.appendChild(listItem("off", "Couldn't load the alerts"));
    } else if (alerts.length === 0) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "No alerts firing.";
      ul.appendChild(li);
    } else {
      for (const a of alerts) ul.appendChild(listItem(a.severity, a.title, `${a.summary} — ${a.state}`));
    }
  }

  function drawHealth(items) {
    const ul = $("health");
    ul.replaceChildren(...items.map((h) => listItem(h.level, h.name, h.text)));
  }

  let lastChart = null;
  function render(view) {
    lastChart = view.chart;
    const f = view.figures;
    setText("title", view.title);
    setText("last-hour-orders", f.last_hour_orders);
    setText("last-hour-revenue", f.last_hour_revenue);
    setText("last-order", f.last_order);
    setText("today-orders", f.today_orders);
    setText("today-revenue", f.today_revenue);
    $("today-net").textContent = f.today_net || "";
    $("today-currencies").textContent = f.today_currencies || "";
    setText("today-customers", f.today_customers);
    $("today-vs").textContent = f.today_vs ? "· " + f.today_vs : "";
    setText("pending", f.pending);
    setText("conversion", f.conversion);
    $("conversion-detail").textContent = f.conversion_detail || "";
    const m = view.subscriptions;  // null: a store without subscriptions, no card
    $("mrr-card").hidden = !m;
    setText("mrr", m ? m.mrr : "—");
    $("mrr-detail").textContent = m ? m.detail : "";
    setText("updated", view.updated);
    drawChart(view.chart);
    drawAlerts(view.alerts);
    drawHealth(view.health);
    document.body.dataset.status = view.status;
    document.body.dataset.updatedAt = view.updated_at;
    document.body.dataset.missing = view.missing.join(",");
  }

  // Status pill, banner and the greyed-out look, from what the last attempts said.
  function freshness() {
    if (signedOut) return;
    const age = lastOk ? Date.now() - lastOk : Infinity;
    const stale = age > STALE_MS;
    $("dash").classList.toggle("stale", Boolean(lastOk) && stale);
    setText("age", lastOk ? ago(age) : "");
    const since = lastOk ? ` Showing figures from ${$("updated").textContent} (${ago(age)}).` : "";
    if (problem === "offline") {
      setStatus("offline", "Offline");
      setBanner("Can't reach the server." + since + " Retrying every 30 s.", true);
    } else if (problem === "error") {
      setStatus("error", "Server error");
      setBanner("The server couldn't load the figures (the database may be down)." + since, true);
    } else if (stale) {
      setStatus("stale", "Stale");
      setBanner("These figures are out of date." + since, false);
    } else if (document.body.dataset.missing) {
      setStatus("degraded", "Partial");
      setBanner(`Couldn't get ${document.body.dataset.missing.replaceAll(",", ", ")} in time — ` +
        "the database is slow. The rest is current.", false);
    } else {
      setStatus(document.body.dataset.status === "degraded" ? "degraded" : "live",
        document.body.dataset.status === "degraded" ? "Needs attention" : "Live");
      setBanner("");
    }
  }

  async function load() {
    if (inFlight || signedOut) return;
    inFlight = true;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
    try {
      const resp = await fetch("/dashboard/data", {
        credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" },
        signal: abort.signal,
      });
      if (resp.status === 401) {
        signedOut = true;
        show("signin");
        setStatus("off", "Signed out");
        setBanner("");
        return;
      }
      const body = await resp.json().catch(() => null);
      if (!resp.ok || !body || !body.view) {
        problem = "error";
        return;
      }
      problem = "";
      lastOk = Date.now();
      show("dash");         // first, so the chart can measure its width
      render(body.view);
    } catch (err) {
      problem = "offline";   // network error, DNS, timeout: the server is unreachable from here
    } finally {
      clearTimeout(timer);
      inFlight = false;
      freshness();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    load();
    setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
    setInterval(freshness, 5000);
    // Phones suspend background tabs: catch up as soon as the page is looked at again.
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && Date.now() - lastOk > 5000) load();
    });
    window.addEventListener("online", load);
    window.addEventListener("resize", () => { if (lastChart) drawChart(lastChart); });
    window.addEventListener("offline", () => { problem = "offline"; freshness(); });
  });
})();

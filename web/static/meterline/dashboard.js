// The live dashboard: one WebSocket (/ws/accounts/{id}/, authenticated by the
// session cookie), a snapshot on connect, then `charge`, `meter_status`, and for
// prepaid accounts `alert` and `balance` events. Amounts arrive as decimal strings; they become numbers only to be shown.
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("page-data").textContent);
  var money = new Intl.NumberFormat(undefined, { style: "currency", currency: data.currency,
    minimumFractionDigits: 2, maximumFractionDigits: 4 });
  var quantity = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 });
  var clock = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
  var dayClock = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "short" });
  var day = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: data.timezone });

  var totalEl = document.getElementById("total");
  var periodEl = document.getElementById("period");
  var statusEl = document.getElementById("connection");
  var tbody = document.querySelector("#meters tbody");

  var names = {};
  var lastSeen = {};
  data.meters.forEach(function (m) { names[m.id] = m.name; lastSeen[m.id] = m.last_ts; });
  var rows = {};

  // --- connection state ----------------------------------------------------
  function setStatus(kind, text) {
    statusEl.className = "connection " + kind;
    statusEl.textContent = text;
  }

  // --- the total, counting up to its new value ------------------------------
  var shownTotal = null;
  var targetTotal = 0;
  var animation = null;
  var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  function setTotal(value) {
    targetTotal = Number(value);
    totalEl.dataset.value = value;
    if (shownTotal === null || reduceMotion) {
      shownTotal = targetTotal;
      totalEl.textContent = money.format(shownTotal);
      return;
    }
    var from = shownTotal, start = performance.now(), duration = 600;
    if (animation) cancelAnimationFrame(animation);
    function step(now) {
      var t = Math.min(1, (now - start) / duration);
      shownTotal = from + (targetTotal - from) * (1 - Math.pow(1 - t, 3));
      totalEl.textContent = money.format(shownTotal);
      animation = t < 1 ? requestAnimationFrame(step) : null;
    }
    animation = requestAnimationFrame(step);
  }

  // --- meters table ----------------------------------------------------------
  function cell(row, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function meterRow(id) {
    if (rows[id]) return rows[id];
    var tr = document.createElement("tr");
    tr.dataset.meter = id;
    var th = document.createElement("th");
    th.scope = "row";
    th.textContent = names[id] || id;
    tr.appendChild(th);
    rows[id] = {
      tr: tr,
      status: cell(tr, "status"),
      usage: cell(tr, "num usage"),
      amount: cell(tr, "num amount"),
      last: cell(tr, "last"),
    };
    tbody.appendChild(tr);
    setOnline(id, false);
    setLast(id, lastSeen[id]);
    return rows[id];
  }

  function setOnline(id, online) {
    var row = meterRow(id);
    row.status.className = "status " + (online ? "online" : "offline");
    row.status.innerHTML = '<span class="dot" aria-hidden="true"></span>';
    var label = document.createElement("span");
    label.className = "status-text";
    label.textContent = online ? "Online" : "Offline";
    row.status.appendChild(label);
  }

  function setLast(id, iso) {
    var row = rows[id];
    if (!iso) {
      row.last.textContent = "–";
      return;
    }
    var when = new Date(iso);
    var today = when.toDateString() === new Date().toDateString();
    row.last.textContent = (today ? clock : dayClock).format(when);
  }

  function setUsage(id, usage, amount) {
    var row = meterRow(id);
    row.usage.textContent = quantity.format(Number(usage));
    row.usage.dataset.value = usage;
    row.amount.textContent = money.format(Number(amount));
    row.amount.dataset.value = amount;
  }

  function flash(id) {
    var tr = rows[id].tr;
    tr.classList.remove("flash");
    void tr.offsetWidth; // restart the animation
    tr.classList.add("flash");
  }

  // --- chart: charges per 10 s over the last 5 minutes -------------------------
  var BUCKET = 10, WINDOW = 300;
  var buckets = {}; // bucket start (unix s) -> amount
  var chartEl = document.getElementById("chart");
  var chart = null;

  function chartData() {
    var now = Math.floor(Date.now() / 1000 / BUCKET) * BUCKET;
    var xs = [], ys = [];
    for (var t = now - WINDOW + BUCKET; t <= now; t += BUCKET) {
      xs.push(t);
      ys.push(buckets[t] || 0);
    }
    Object.keys(buckets).forEach(function (k) { if (Number(k) < now - WINDOW) delete buckets[k]; });
    return [xs, ys];
  }

  function makeChart() {
    if (typeof uPlot === "undefined") return;
    var opts = {
      width: chartEl.clientWidth || 320,
      height: 220,
      legend: { show: false },
      cursor: { show: true },
      scales: { x: { time: true, range: function (u, min, max) { return [min - BUCKET / 2, max + BUCKET / 2]; } }, y: { range: function (u, min, max) { return [0, Math.max(max, 0.01) * 1.15]; } } },
      axes: [
        { stroke: "#4f5863" },
        { stroke: "#4f5863", size: 70, values: function (u, vals) { return vals.map(function (v) { return money.format(v); }); } },
      ],
      series: [
        {},
        { label: "Charges", stroke: "#0b5cad", fill: "rgba(11,92,173,0.25)", width: 1,
          paths: uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined,
          points: { show: false } },
      ],
    };
    chart = new uPlot(opts, chartData(), chartEl);
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        chart.setSize({ width: chartEl.clientWidth, height: 220 });
      }).observe(chartEl);
    }
    setInterval(function () { chart.setData(chartData()); }, 1000);
  }

  function addToChart(isoTime, amount) {
    var t = Math.floor(new Date(isoTime).getTime() / 1000 / BUCKET) * BUCKET;
    buckets[t] = (buckets[t] || 0) + Number(amount);
    if (chart) chart.setData(chartData());
  }

  // --- credit control: the balance counting down, alerts as they fire ----------------
  var balanceCard = document.getElementById("balance-card");
  var balanceEl = document.getElementById("balance");
  var cutoffEl = document.getElementById("cutoff-state");
  var alertsEl = document.getElementById("alerts");
  var noAlertsEl = document.getElementById("no-alerts");
  var alertsSeen = {}; // an alert may be told twice (at least once): its id says so
  var LABELS = { spend_above: "Spend reached", usage_above: "Usage reached",
    balance_below: "Balance fell to" };

  function setBalance(balance, cutOff) {
    if (balance === undefined) return;
    balanceCard.hidden = false;
    balanceEl.textContent = money.format(Number(balance));
    balanceEl.dataset.value = balance;
    if (cutOff !== undefined) {
      cutoffEl.textContent = cutOff ? "Cut off: the balance is used up; devices were told." : "";
      balanceCard.classList.toggle("cut-off", !!cutOff);
    }
  }

  function onAlert(msg) {
    if (alertsSeen[msg.id]) return;
    alertsSeen[msg.id] = true;
    noAlertsEl.hidden = true;
    var li = document.createElement("li");
    li.dataset.alert = msg.alert;
    var figure = msg.kind === "usage_above" ? quantity.format(Number(msg.value))
      : money.format(Number(msg.value));
    li.textContent = clock.format(new Date(msg.fired_at)) + ": " + (LABELS[msg.kind] || msg.kind) +
      " " + figure + " (threshold " + msg.threshold + ")" +
      (msg.meter ? " on " + (names[msg.meter] || msg.meter) : "");
    alertsEl.insertBefore(li, alertsEl.firstChild);
  }

  // --- events --------------------------------------------------------------------
  function onSnapshot(msg) {
    setBalance(msg.balance, msg.cut_off);
    setTotal(msg.total);
    periodEl.textContent = "Period " + day.format(new Date(msg.period.start)) + " – " +
      day.format(new Date(msg.period.end)) + " (" + msg.currency + ")";
    msg.meters.forEach(function (m) {
      setUsage(m.id, m.usage, m.amount);
      setOnline(m.id, m.online);
    });
  }

  function onCharge(msg) {
    setTotal(msg.period_total);
    setBalance(msg.balance);
    setUsage(msg.meter, msg.meter_usage, addDecimal(rows[msg.meter] && rows[msg.meter].amount.dataset.value, msg.amount));
    lastSeen[msg.meter] = msg.rated_at;
    setLast(msg.meter, msg.rated_at);
    flash(msg.meter);
    addToChart(msg.rated_at, msg.amount);
  }

  // The meter's amount is its old amount plus the charge: exact in micro-units
  // (6 places), so no float drift accumulates over a long session.
  function addDecimal(a, b) {
    function micros(s) {
      s = String(s || "0");
      var neg = s.charAt(0) === "-";
      if (neg) s = s.slice(1);
      var parts = s.split(".");
      var frac = ((parts[1] || "") + "000000").slice(0, 6);
      var v = BigInt(parts[0] || "0") * 1000000n + BigInt(frac);
      return neg ? -v : v;
    }
    var sum = micros(a) + micros(b);
    var neg = sum < 0n;
    if (neg) sum = -sum;
    var whole = sum / 1000000n, frac = (sum % 1000000n).toString().padStart(6, "0");
    return (neg ? "-" : "") + whole.toString() + "." + frac;
  }

  // --- the socket, reconnecting with backoff ------------------------------------------
  var FINAL = { 4401: "Signed out: reload the page to sign in again.",
    4403: "You may not watch this account.", 4404: "This account no longer exists." };
  var attempt = 0;
  var retryTimer = null;

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + location.host + data.socket_path);
    setStatus("connecting", attempt ? "Reconnecting…" : "Connecting…");
    ws.onmessage = function (event) {
      var msg = JSON.parse(event.data);
      // For the page's other parts (charging.js: EV charging sessions).
      document.dispatchEvent(new CustomEvent("meterline:message", { detail: msg }));
      if (msg.type === "snapshot") {
        attempt = 0;
        setStatus("live", "Live");
        onSnapshot(msg);
      } else if (msg.type === "charge") {
        onCharge(msg);
      } else if (msg.type === "meter_status") {
        setOnline(msg.meter, msg.online);
      } else if (msg.type === "alert") {
        onAlert(msg);
      } else if (msg.type === "balance") {
        setBalance(msg.balance, msg.cut_off);
      }
    };
    ws.onclose = function (event) {
      if (FINAL[event.code]) {
        setStatus("down", FINAL[event.code]);
        return;
      }
      attempt += 1;
      var delay = Math.min(30000, 500 * Math.pow(2, attempt - 1)) * (0.75 + Math.random() * 0.5);
      setStatus("down", "Disconnected: retrying in " + Math.ceil(delay / 1000) + " s");
      clearTimeout(retryTimer);
      retryTimer = setTimeout(connect, delay);
    };
  }

  data.meters.forEach(function (m) { meterRow(m.id); });
  makeChart();
  connect();
})();

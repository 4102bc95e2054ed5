// EV charging sessions on the live dashboard: the ones charging now, each with its energy
// and its amount so far. The page starts from the active sessions it was rendered with;
// then dashboard.js hands over every message of the dashboard socket ("meterline:message"):
// `charging_session` (a session started or completed, as the API shows it), `charge`
// (the session's meter was charged: its amount and energy grow by the charge's) and
// `connector_status`. Amounts stay decimal strings, added exactly in micro-units.
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("page-data").textContent);
  var card = document.getElementById("charging-card");
  var tbody = document.querySelector("#charging tbody");
  var money = new Intl.NumberFormat(undefined, { style: "currency", currency: data.currency,
    minimumFractionDigits: 2, maximumFractionDigits: 4 });
  var kwh = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 });
  var clock = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
  var KEEP_COMPLETED_MS = 60000; // a completed session stays a minute, with its final amount

  var byMeter = {}; // meter id -> {session, row}: one billed session per charge point

  function micros(s) {
    s = String(s || "0");
    var neg = s.charAt(0) === "-";
    if (neg) s = s.slice(1);
    var parts = s.split(".");
    var v = BigInt(parts[0] || "0") * 1000000n + BigInt(((parts[1] || "") + "000000").slice(0, 6));
    return neg ? -v : v;
  }

  function decimal(v) {
    var neg = v < 0n;
    if (neg) v = -v;
    return (neg ? "-" : "") + (v / 1000000n).toString() + "." +
      (v % 1000000n).toString().padStart(6, "0");
  }

  function cells(tr, n) {
    var out = [];
    for (var i = 0; i < n; i++) {
      var td = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) td.scope = "row";
      if (i >= 4) td.className = "num";
      tr.appendChild(td);
      out.push(td);
    }
    return out;
  }

  function show(session) {
    var entry = byMeter[session.meter];
    if (!entry) {
      var tr = document.createElement("tr");
      tr.dataset.session = session.id;
      entry = byMeter[session.meter] = { row: tr, cells: cells(tr, 6) };
      tbody.appendChild(tr);
    }
    entry.session = session;
    var c = entry.cells;
    c[0].textContent = session.charge_point_id;
    c[1].textContent = String(session.connector_id) + (entry.status ? " · " + entry.status : "");
    c[2].textContent = session.id_tag;
    c[3].textContent = clock.format(new Date(session.started_at));
    c[4].textContent = kwh.format(Number(session.energy_kwh)) + " kWh";
    c[5].textContent = money.format(Number(session.amount)) +
      (session.status === "completed" ? " (completed)" : "");
    c[5].dataset.value = session.amount;
    card.hidden = false;
  }

  function onSession(session) {
    show(session);
    if (session.status !== "completed") return;
    setTimeout(function () {
      var entry = byMeter[session.meter];
      if (!entry || entry.session.id !== session.id) return; // a new session took its place
      tbody.removeChild(entry.row);
      delete byMeter[session.meter];
      card.hidden = !Object.keys(byMeter).length;
    }, KEEP_COMPLETED_MS);
  }

  function onCharge(msg) {
    var entry = byMeter[msg.meter];
    if (!entry || entry.session.status !== "active" || !entry.session.billed) return;
    var session = entry.session;
    session.amount = decimal(micros(session.amount) + micros(msg.amount));
    session.energy_kwh = decimal(micros(session.energy_kwh) + micros(msg.quantity));
    show(session);
  }

  function onStatus(msg) {
    var entry = byMeter[msg.meter];
    if (!entry || entry.session.connector_id !== msg.connector_id) return;
    entry.status = msg.status;
    show(entry.session);
  }

  data.sessions.forEach(show);
  document.addEventListener("meterline:message", function (event) {
    var msg = event.detail;
    if (msg.type === "charging_session") onSession(msg.session);
    else if (msg.type === "charge") onCharge(msg);
    else if (msg.type === "connector_status") onStatus(msg);
  });
})();

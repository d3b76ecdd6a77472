// The help-desk console's shared page code: texts, JSON POSTs, live updates (SSE), and the
// fleet, alerts and queue pages. Plain JS, no framework; every value is put into the page as
// text (textContent), never as HTML.
"use strict";

var HD = (function () {
  var texts = JSON.parse(document.getElementById("texts").textContent);
  var clockOffset = 0; // server seconds minus browser seconds

  function t(key, values) {
    var s = texts[key];
    if (s === undefined) {
      return key;
    }
    if (values) {
      s = s.replace(/\{(\w+)\}/g, function (m, name) {
        return values[name] === undefined ? m : String(values[name]);
      });
    }
    return s;
  }

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) {
          return;
        }
        if (k === "text") {
          node.textContent = v;
        } else if (k === "className") {
          node.className = v;
        } else if (k.indexOf("on") === 0) {
          node.addEventListener(k.slice(2), v);
        } else if (k.indexOf("data-") === 0 || k === "title" || k === "type" || k === "id" || k === "href" ||
                   k === "value" || k === "aria-label" || k === "role") {
          node.setAttribute(k, v);
        } else {
          node[k] = v;
        }
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) {
        continue;
      }
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function now() {
    return Date.now() / 1000 + clockOffset;
  }

  function setServerNow(serverNow) {
    if (typeof serverNow === "number") {
      clockOffset = serverNow - Date.now() / 1000;
    }
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function clock(ts) {
    if (!ts) {
      return "";
    }
    var d = new Date((ts - clockOffset) * 1000);
    var time = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    var today = new Date();
    if (d.toDateString() === today.toDateString()) {
      return time;
    }
    return (d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + time; // another day: say which
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var m = Math.floor(seconds / 60);
    var s = seconds % 60;
    if (m >= 60) {
      return Math.floor(m / 60) + "h " + pad(m % 60) + "m";
    }
    return m > 0 ? m + ":" + pad(s) : s + "s";
  }

  function stepName(step) {
    return step ? t("step." + step) : "";
  }

  var banner = document.getElementById("banner");
  var bannerTimer = null;

  function say(message, kind) {
    if (!banner) {
      return;
    }
    banner.textContent = message;
    banner.className = "banner " + (kind || "info");
    banner.hidden = false;
    clearTimeout(bannerTimer);
    bannerTimer = setTimeout(function () { banner.hidden = true; }, kind === "error" ? 15000 : 6000);
  }

  // A state-changing call: JSON, our header, same origin. Resolves {ok, status, data}.
  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Requested-With": "helpdesk" },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      if (response.status === 401) {
        window.location.href = "/login";
      }
      return response.json().catch(function () { return {}; }).then(function (data) {
        var ok = response.ok && data.ok !== false;
        return { ok: ok, status: response.status, data: data,
                 error: ok ? "" : (data.error || response.status + " " + response.statusText) };
      });
    }, function () {
      return { ok: false, status: 0, data: {}, error: t("error.network") };
    });
  }

  // Live updates: a snapshot first, then changes; reconnects by itself.
  function live(url, handlers) {
    var indicator = document.getElementById("live");
    var source = null;
    function mark(state) {
      if (indicator) {
        indicator.dataset.state = state;
        indicator.textContent = state === "open" ? t("nav.live") : t("nav.reconnecting");
      }
    }
    function connect() {
      source = new EventSource(url);
      source.addEventListener("open", function () { mark("open"); });
      source.addEventListener("error", function () {
        mark("closed");
        if (source.readyState === EventSource.CLOSED) {
          // the server ended the stream (logged out, or it restarted): check the session, then retry
          fetch("/api/snapshot", { credentials: "same-origin" }).then(function (r) {
            if (r.status === 401) {
              window.location.href = "/login";
            } else {
              setTimeout(connect, 2000);
            }
          }, function () { setTimeout(connect, 3000); });
        }
      });
      Object.keys(handlers).forEach(function (kind) {
        source.addEventListener(kind, function (event) {
          var message = JSON.parse(event.data);
          var data = kind === "snapshot" ? message : message.data;
          if (kind === "snapshot") {
            mark("open");
            setServerNow(data.now);
          }
          handlers[kind](data);
        });
      });
    }
    connect();
    return function () { if (source) { source.close(); } };
  }

  return { t: t, el: el, now: now, clock: clock, duration: duration, stepName: stepName, say: say, post: post,
           live: live, setServerNow: setServerNow };
})();

// -- the fleet, alerts and queue pages share one store of what the console knows ---------------
(function () {
  var t = HD.t, el = HD.el;
  var page = document.body.dataset.page;
  var role = document.body.dataset.role;
  if (!role || page === "call" || page === "") {
    return;
  }
  var state = { terminals: {}, alerts: {}, calls: {}, recent: [], health: {} };

  function alertKey(a) {
    return a.terminal + "\u0000" + a.id + "\u0000" + a.raised_at;
  }

  function counts() {
    var active = Object.values(state.alerts).filter(function (a) { return a.active; }).length;
    var waiting = Object.values(state.calls).filter(function (c) { return c.state === "waiting"; }).length;
    var alertCount = document.getElementById("alert-count");
    var callCount = document.getElementById("call-count");
    if (alertCount) {
      alertCount.textContent = active;
      alertCount.hidden = active === 0;
    }
    if (callCount) {
      callCount.textContent = waiting;
      callCount.hidden = waiting === 0;
    }
  }

  // -- fleet --------------------------------------------------------------------------------
  function statusCell(term) {
    var cell = el("td", { className: "status" });
    var online = term.online === true, offline = term.online === false;
    var word = online ? t("fleet.online") : offline ? t("fleet.offline") : t("fleet.unknown");
    cell.appendChild(el("span", { className: "pill " + (online ? "ok" : offline ? "bad" : "unknown"),
                                  text: word, "data-online": online ? "yes" : offline ? "no" : "" }));
    var detail = [];
    if (offline && term.reason) {
      var reasonKey = "fleet.reason." + term.reason;
      var reason = t(reasonKey);
      detail.push(reason === reasonKey ? term.reason : reason);
    }
    if (term.since) {
      detail.push(t("fleet.since", { time: HD.clock(term.since) }));
    }
    cell.appendChild(el("div", { className: "small muted", text: detail.join(" · ") }));
    if (online && term.heartbeat_age_s !== null && term.heartbeat_age_s !== undefined) {
      cell.appendChild(el("div", { className: "small muted heartbeat", "data-beat": String(HD.now() - term.heartbeat_age_s),
                                   text: t("fleet.heartbeat", { age: HD.duration(term.heartbeat_age_s) }) }));
    }
    return cell;
  }

  function paperCell(term) {
    var p = term.paper || "ok";
    return el("td", null, el("span", { className: "pill " + (p === "ok" ? "ok" : p === "low" ? "warn" : "bad"),
                                       text: t("fleet.paper." + p) }));
  }

  function faultsCell(term) {
    var cell = el("td", { className: "faults" });
    if (!term.faults || term.faults.length === 0) {
      cell.appendChild(el("span", { className: "muted", text: t("fleet.no_faults") }));
      return cell;
    }
    var list = el("ul", { className: "plain" });
    term.faults.forEach(function (d) {
      list.appendChild(el("li", null, el("strong", { text: d.name }), " " + (d.fault || d.state)));
    });
    cell.appendChild(list);
    return cell;
  }

  function supervisorCell(term) {
    var cell = el("td", { className: "actions" });
    if (term.online === false) {
      cell.appendChild(el("span", { className: "muted small", text: t("fleet.offline_no_actions") }));
      return cell;
    }
    var select = el("select", { "aria-label": t("fleet.choose_device"), className: "device-select" });
    (term.devices || []).forEach(function (d) { select.appendChild(el("option", { value: d.name, text: d.name })); });
    cell.appendChild(select);
    cell.appendChild(el("button", { type: "button", className: "small-button", text: t("fleet.restart"),
      onclick: function () {
        var device = select.value;
        if (!device || !window.confirm(t("fleet.confirm_restart", { terminal: term.id, device: device }))) {
          return;
        }
        HD.post("/api/terminals/" + encodeURIComponent(term.id) + "/restart", { device: device }).then(function (r) {
          HD.say(r.ok ? r.data.message : r.error, r.ok ? "info" : "error");
        });
      } }));
    cell.appendChild(el("button", { type: "button", className: "small-button danger-outline", text: t("fleet.reset"),
      onclick: function () {
        if (!window.confirm(t("fleet.confirm_reset", { terminal: term.id }))) {
          return;
        }
        HD.post("/api/terminals/" + encodeURIComponent(term.id) + "/reset", {}).then(function (r) {
          HD.say(r.ok ? r.data.message : r.error, r.ok ? "info" : "error");
        });
      } }));
    return cell;
  }

  function waitingCall(terminalId) {
    return Object.values(state.calls).some(function (c) { return c.terminal === terminalId && c.state === "waiting"; });
  }

  function renderFleet() {
    var body = document.getElementById("fleet-rows");
    if (!body) {
      return;
    }
    var terms = Object.values(state.terminals).sort(function (a, b) {
      // offline and troubled terminals first, then by id
      function rank(x) { return x.online === false ? 0 : (x.faults.length || x.paper) ? 1 : 2; }
      return rank(a) - rank(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    });
    var supervisor = role === "supervisor";
    body.textContent = "";
    var online = 0, offline = 0, attention = 0;
    terms.forEach(function (term) {
      if (term.online === true) { online++; }
      if (term.online === false) { offline++; }
      var trouble = term.online === false || term.faults.length > 0 || !!term.paper || term.backlog > 0;
      if (trouble) { attention++; }
      var idCell = el("td", { className: "tid" }, el("strong", { text: term.id }));
      if (waitingCall(term.id)) {
        idCell.appendChild(el("a", { href: "/calls", className: "pill warn call-flag", text: t("fleet.call_waiting") }));
      }
      var row = el("tr", { id: "terminal-" + term.id, "data-terminal": term.id,
                           "data-online": term.online === true ? "yes" : term.online === false ? "no" : "",
                           className: trouble ? "trouble" : "" },
        idCell,
        el("td", { text: term.location || "" }),
        statusCell(term),
        el("td", { className: "step" }, term.online === false ? "—" : HD.stepName(term.step),
           term.in_visit && term.online !== false ? el("span", { className: "muted small", text: " " + t("fleet.in_visit") }) : null),
        paperCell(term),
        faultsCell(term),
        el("td", { className: "num" + (term.backlog > 0 ? " warn-text" : ""), text: String(term.backlog || 0) }));
      if (supervisor) {
        row.appendChild(supervisorCell(term));
      }
      body.appendChild(row);
    });
    document.getElementById("fleet-empty").hidden = terms.length > 0;
    document.getElementById("fleet-summary").textContent =
      t("fleet.summary", { total: terms.length, online: online, offline: offline, attention: attention });
    var health = state.health || {};
    document.getElementById("broker-warning").hidden = health.connected !== false;
    var ignored = Object.values(health.ignored || {}).reduce(function (a, b) { return a + b; }, 0);
    document.getElementById("ignored").textContent = ignored ? t("fleet.ignored", { n: ignored }) : "";
  }

  // -- alerts -------------------------------------------------------------------------------
  function alertKind(a) {
    var key = "alert.kind." + a.kind;
    return t(key) === key ? a.kind : t(key);
  }

  function renderAlerts() {
    var body = document.getElementById("alerts-rows");
    if (!body) {
      return;
    }
    var showCleared = document.getElementById("show-cleared").checked;
    var list = Object.values(state.alerts).filter(function (a) { return a.active || showCleared; });
    list.sort(function (a, b) {
      return Math.max(b.raised_at, b.cleared_at || 0) - Math.max(a.raised_at, a.cleared_at || 0);
    });
    body.textContent = "";
    list.forEach(function (a) {
      var text = a.source === "console" && a.kind === "offline"
        ? (t("fleet.reason." + a.text) === "fleet.reason." + a.text ? a.text : t("fleet.reason." + a.text)) : a.text;
      body.appendChild(el("tr", { className: a.active ? "active" : "cleared", "data-alert": a.id, "data-terminal": a.terminal },
        el("td", { text: HD.clock(a.raised_at) }),
        el("td", null, el("strong", { text: a.terminal })),
        el("td", { text: alertKind(a) + (a.device ? " · " + a.device : "") }),
        el("td", { text: text }),
        el("td", null, el("span", { className: "pill " + (a.active ? "bad" : "ok"),
                                    text: a.active ? t("alerts.active") : t("alerts.cleared", { time: HD.clock(a.cleared_at) }) }))));
    });
    document.getElementById("alerts-empty").hidden = list.length > 0;
  }

  // -- queue --------------------------------------------------------------------------------
  function location(call) {
    var term = state.terminals[call.terminal];
    return (term && term.location) || call.location || "";
  }

  function currentStep(call) {
    var term = state.terminals[call.terminal];
    return HD.stepName((term && term.step) || call.step);
  }

  function accept(call, button) {
    button.disabled = true;
    HD.post("/api/calls/" + encodeURIComponent(call.terminal) + "/" + encodeURIComponent(call.call_id) + "/accept", {})
      .then(function (r) {
        if (r.ok) {
          window.location.href = r.data.url;
        } else {
          button.disabled = false;
          HD.say(r.error, "error");
        }
      });
  }

  function renderCalls() {
    var waitingBody = document.getElementById("waiting-rows");
    if (!waitingBody) {
      return;
    }
    var mayAccept = document.getElementById("calls").dataset.mayAccept === "yes";
    var me = document.body.dataset.staff;
    var calls = Object.values(state.calls).sort(function (a, b) { return a.created_at - b.created_at; });
    waitingBody.textContent = "";
    var acceptedBody = document.getElementById("accepted-rows");
    acceptedBody.textContent = "";
    var nWaiting = 0, nAccepted = 0;
    calls.forEach(function (call) {
      var url = "/calls/" + encodeURIComponent(call.terminal) + "/" + encodeURIComponent(call.call_id);
      if (call.state === "waiting") {
        nWaiting++;
        var button = mayAccept ? el("button", { type: "button", className: "primary accept", text: t("calls.accept"),
                                                "data-terminal": call.terminal, "data-call": call.call_id }) : null;
        if (button) {
          button.addEventListener("click", function () { accept(call, button); });
        }
        waitingBody.appendChild(el("tr", { "data-call": call.call_id, "data-terminal": call.terminal },
          el("td", null, el("strong", { text: call.terminal })),
          el("td", { text: location(call) }),
          el("td", { text: currentStep(call) }),
          el("td", { className: "waited", "data-since": String(call.created_at), text: HD.duration(HD.now() - call.created_at) }),
          el("td", null, button)));
      } else if (call.state === "accepted") {
        nAccepted++;
        var mine = call.staff === me || role === "supervisor";
        acceptedBody.appendChild(el("tr", { "data-call": call.call_id, "data-terminal": call.terminal },
          el("td", null, el("strong", { text: call.terminal })),
          el("td", { text: location(call) }),
          el("td", { text: currentStep(call) }),
          el("td", { text: call.staff_display }),
          el("td", null, mine ? el("a", { href: url, className: "button", text: t("calls.open") }) : null)));
      }
    });
    document.getElementById("waiting-empty").hidden = nWaiting > 0;
    document.getElementById("accepted-empty").hidden = nAccepted > 0;
    var recentBody = document.getElementById("recent-rows");
    recentBody.textContent = "";
    state.recent.slice(0, 10).forEach(function (call) {
      var key = "calls.reason." + call.end_reason;
      var reason = t(key) === key ? call.end_reason : t(key);
      recentBody.appendChild(el("tr", null, el("td", { text: call.terminal }), el("td", { text: location(call) }),
        el("td", { text: call.staff_display || "—" }), el("td", { text: reason + " · " + HD.clock(call.ended_at) })));
    });
  }

  function render() {
    counts();
    renderFleet();
    renderAlerts();
    renderCalls();
  }

  function onCall(call) {
    var before = state.calls[call.terminal + "/" + call.call_id];
    if (call.state === "ended") {
      delete state.calls[call.terminal + "/" + call.call_id];
      state.recent = [call].concat(state.recent.filter(function (c) {
        return !(c.terminal === call.terminal && c.call_id === call.call_id);
      }));
    } else {
      state.calls[call.terminal + "/" + call.call_id] = call;
      if (!before && call.state === "waiting" && page !== "calls") {
        HD.say(t("calls.new_call", { terminal: call.terminal }), "call");
      }
    }
  }

  var showCleared = document.getElementById("show-cleared");
  if (showCleared) {
    showCleared.addEventListener("change", renderAlerts);
  }

  HD.live("/api/events", {
    snapshot: function (snap) {
      state.terminals = {};
      snap.terminals.forEach(function (x) { state.terminals[x.id] = x; });
      state.alerts = {};
      snap.alerts.forEach(function (a) { state.alerts[alertKey(a)] = a; });
      state.calls = {};
      snap.calls.forEach(function (c) { state.calls[c.terminal + "/" + c.call_id] = c; });
      state.recent = snap.recent_calls;
      state.health = snap.health;
      render();
    },
    terminal: function (term) {
      state.terminals[term.id] = term;
      render();
    },
    alert: function (a) {
      state.alerts[alertKey(a)] = a;
      render();
    },
    call: function (call) {
      onCall(call);
      render();
    },
    health: function (health) {
      state.health = health;
      render();
    },
  });

  // ages and waiting times move on by themselves
  setInterval(function () {
    document.querySelectorAll("td.waited").forEach(function (cell) {
      cell.textContent = HD.duration(HD.now() - Number(cell.dataset.since));
    });
    document.querySelectorAll("div.heartbeat").forEach(function (line) {
      line.textContent = t("fleet.heartbeat", { age: HD.duration(HD.now() - Number(line.dataset.beat)) });
    });
  }, 1000);
})();

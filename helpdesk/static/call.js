// The call page: the kiosk's screen mirror (16:10, like the kiosk), pointing by click, the
// conversation, moving the visit to a step, consent, ending the call, supervisor actions.
// The mirror's shape is kiosk/screen_mirror.py's; masked values arrive as ●●● already.
"use strict";

(function () {
  var t = HD.t, el = HD.el;
  var main = document.getElementById("call");
  if (!main) {
    return;
  }
  var terminal = main.dataset.terminal, callId = main.dataset.call;
  var base = "/api/calls/" + encodeURIComponent(terminal) + "/" + encodeURIComponent(callId);
  var statusLine = document.getElementById("call-status");
  var mirrorBox = document.getElementById("mirror");
  var screen = document.getElementById("mirror-screen");
  var layoutBox = document.getElementById("mirror-layout");
  var ring = document.getElementById("pointer-ring");
  var ended = false;
  var lastSeq = -1;
  var shownPointerSeq = null;

  function status(message, kind) {
    statusLine.textContent = message;
    statusLine.className = "status " + (kind || "");
  }

  function reasonText(reason) {
    var key = "calls.reason." + reason;
    return t(key) === key ? reason : t(key);
  }

  // -- the mirror ------------------------------------------------------------------------------
  function shown(item, className) {
    if (!item || !item.text) {
      return null;
    }
    return el("p", { className: className + (item.masked ? " has-masked" : ""), text: item.text });
  }

  function section(titleKey, list) {
    if (!list || list.length === 0) {
      return null;
    }
    var box = el("div", { className: "k-section" }, el("h4", { text: t(titleKey) }));
    list.forEach(function (node) { box.appendChild(node); });
    return box;
  }

  function renderMirror(m) {
    screen.textContent = "";
    screen.dataset.step = m.step || "";
    screen.classList.toggle("elder", !!m.elder);
    var help = m.help && m.help.state ? el("span", { className: "k-help",
      text: t("call.help_panel", { state: helpState(m.help) }) }) : null;
    var head = el("div", { className: "k-head" },
      el("span", { className: "k-step", text: HD.stepName(m.step) }), help,
      m.position_text ? el("span", { className: "k-pos", text: m.position_text }) : null,
      m.language ? el("span", { className: "k-lang", text: languageName(m.language) }) : null);
    screen.appendChild(head);
    var body = el("div", { className: "k-body" });
    screen.appendChild(body);
    var title = shown(m.title, "k-title");
    if (title) { body.appendChild(title); }
    var prompt = shown(m.prompt, "k-prompt");
    if (prompt) { body.appendChild(prompt); }
    var message = shown(m.message, "k-message");
    if (message) { body.appendChild(message); }
    if (m.warning && m.warning.text) {
      body.appendChild(el("p", { className: "k-warning", text: m.warning.text }));
    }
    (m.notices || []).forEach(function (n) { if (n) { body.appendChild(el("p", { className: "k-notice", text: n })); } });

    if (m.item && m.item.title && !(m.title && m.title.text && m.title.text.indexOf(m.item.title) >= 0)) {
      body.appendChild(el("p", { className: "k-item", text: m.item.title }));
    }
    if (m.step === "notice" && m.item) {  // 办事须知: what the citizen is reading now
      [m.item.summary, m.item.notice].forEach(function (words) {
        if (words) { body.appendChild(el("p", { className: "k-notice-text", text: words })); }
      });
      if (m.item.departments && m.item.departments.length) {
        body.appendChild(el("p", { className: "k-notice-text muted", text: m.item.departments.join(" · ") }));
      }
    }
    var fields = (m.fields || []).map(function (f) {
      var value = f.value || "";
      return el("div", { className: "k-field" + (f.masked ? " masked" : "") + (f.problem ? " problem" : ""),
                         "data-key": f.key },
        el("span", { className: "k-label", text: (f.required ? "* " : "") + f.label }),
        el("span", { className: "k-value", text: value || "—" }),
        f.problem ? el("span", { className: "k-problem", text: "⚠ " + f.problem }) : null);
    });
    var fieldBox = section("call.fields", fields);
    if (fieldBox) { fieldBox.classList.add("k-fields"); body.appendChild(fieldBox); }
    var services = (m.services || []).map(function (s) {
      return el("span", { className: "k-chip", text: s.title, "data-id": s.id });
    });
    var serviceBox = section("call.services", services);
    if (serviceBox) { serviceBox.classList.add("k-services"); body.appendChild(serviceBox); }
    var materials = (m.materials || []).map(function (mt) {
      return el("div", { className: "k-material " + (mt.provided ? "ok" : "missing") },
        el("span", { text: (mt.required ? "* " : "") + mt.title }),
        el("span", { className: "k-tag", text: mt.provided ? t("call.material_provided") : t("call.material_missing") }));
    });
    var materialBox = section("call.materials", materials);
    if (materialBox) { body.appendChild(materialBox); }
    if (m.home) {
      var benefits = (m.home.benefits || []).map(function (b) {
        return el("div", { className: "k-benefit" }, el("strong", { text: b.title }), " " + (b.reason || ""));
      });
      var apps = (m.home.applications || []).map(function (a) {
        return el("div", { className: "k-app" + (a.masked ? " masked" : "") },
          el("span", { text: a.title }), " ", el("span", { className: "k-value", text: a.receipt_number }),
          " ", el("span", { className: "k-tag", text: a.status }));
      });
      var b1 = section("call.benefits", benefits), b2 = section("call.applications", apps);
      if (b1) { body.appendChild(b1); }
      if (b2) { body.appendChild(b2); }
    }
    var receipt = shown(m.receipt, "k-receipt");
    if (receipt) { body.appendChild(receipt); }
    var handout = shown(m.handout, "k-handout");
    if (handout) { body.appendChild(handout); }
    renderLayout(m.layout, m.labels || {});
    if (m.pointer && m.pointer.length === 3 && m.pointer[2] !== shownPointerSeq) {
      shownPointerSeq = m.pointer[2];
      showRing(m.pointer[0], m.pointer[1]);
    }
    document.getElementById("call-language").textContent =
      m.language ? t("call.language", { language: languageName(m.language) }) : "";
  }

  function languageName(code) {
    var key = "language_name." + ({ "zh-CN": "chinese", en: "english" }[code] || code);
    return t(key) === key ? code : t(key);
  }

  function helpState(help) {
    var key = "call.help_state." + help.state;
    var words = t(key) === key ? help.state : t(key);
    return help.minimized ? words + " · " + t("call.help_state.minimized") : words;
  }

  function renderLayout(layout, labels) {
    layoutBox.textContent = "";
    if (!layout) {
      return;
    }
    Object.keys(layout).forEach(function (target) {
      var box = layout[target];
      // the words on the kiosk's button when it sent them, else its action name
      var node = el("div", { className: "target" + (labels[target] ? " labelled" : ""), title: target,
                             "data-target": target },
        el("span", { text: labels[target] || target.replace(/^[a-z_]+:/, "") || target }));
      node.style.left = (box[0] * 100) + "%";
      node.style.top = (box[1] * 100) + "%";
      node.style.width = (box[2] * 100) + "%";
      node.style.height = (box[3] * 100) + "%";
      layoutBox.appendChild(node);
    });
  }

  function showRing(x, y) {
    ring.hidden = true;
    ring.style.left = (x * 100) + "%";
    ring.style.top = (y * 100) + "%";
    void ring.offsetWidth; // restart the animation
    ring.hidden = false;
    clearTimeout(showRing.timer);
    showRing.timer = setTimeout(function () { ring.hidden = true; }, 4000);
  }

  function renderConsent(consent) {
    var badge = document.getElementById("consent-badge");
    var key = consent === "granted" ? "call.consented" : consent === "asked" ? "call.consent_asked"
      : consent === "refused" ? "call.consent_refused" : "call.masked";
    badge.textContent = t(key);
    badge.dataset.consent = consent || "";
    badge.className = "badge " + (consent === "granted" ? "consented" : "masked");
    document.getElementById("ask-consent").disabled = ended || consent === "granted" || consent === "asked";
  }

  // -- the conversation --------------------------------------------------------------------
  var seen = {};

  function addTranscript(entry) {
    var key = entry.at + "|" + entry.kind + "|" + entry.text;
    if (seen[key]) { return; } // the answer to our POST and the live event bring the same line
    seen[key] = true;
    var list = document.getElementById("transcript");
    var empty = list.querySelector(".empty");
    if (empty) { empty.remove(); }
    list.appendChild(el("li", { className: "t-" + entry.kind },
      el("span", { className: "t-time", text: HD.clock(entry.at) }),
      el("span", { className: "t-who", text: entry.staff || t("call.you") }),
      el("span", { className: "t-text", text: entry.text })));
    list.scrollTop = list.scrollHeight;
  }

  function callEnded(call) {
    ended = true;
    main.dataset.state = "ended";
    var box = document.getElementById("call-ended");
    box.textContent = t("call.ended", { reason: reasonText(call.end_reason || "") });
    box.hidden = false;
    ["send-message", "goto-button", "ask-consent", "end-call", "message-text", "start-media"].forEach(function (id) {
      var node = document.getElementById(id);
      if (node) { node.disabled = true; }
    });
    var stop = document.getElementById("stop-media");
    if (stop && !stop.disabled) { stop.click(); }
  }

  function act(path, body, done) {
    if (ended) { return; }
    status("…");
    HD.post(base + path, body).then(function (r) {
      if (!r.ok) {
        status(r.error, "error");
        return;
      }
      status(r.data.warning || "", r.data.warning ? "error" : "ok");
      if (r.data.entry) { addTranscript(r.data.entry); }
      if (done) { done(r); }
    });
  }

  mirrorBox.addEventListener("click", function (event) {
    if (ended) { return; }
    var rect = mirrorBox.getBoundingClientRect();
    var x = Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width));
    var y = Math.min(1, Math.max(0, (event.clientY - rect.top) / rect.height));
    showRing(x, y);
    act("/point", { x: Math.round(x * 10000) / 10000, y: Math.round(y * 10000) / 10000 });
  });

  document.getElementById("message-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var box = document.getElementById("message-text");
    var text = box.value.trim();
    if (!text) { return; }
    act("/message", { text: text }, function () { box.value = ""; });
  });
  document.getElementById("message-text").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      document.getElementById("message-form").requestSubmit();
    }
  });
  document.getElementById("goto-button").addEventListener("click", function () {
    act("/goto", { step: document.getElementById("goto-step").value });
  });
  document.getElementById("ask-consent").addEventListener("click", function () {
    act("/consent", {}, function () { renderConsent("asked"); });
  });
  document.getElementById("end-call").addEventListener("click", function () {
    if (window.confirm(t("call.confirm_end"))) {
      act("/end", {});
    }
  });
  var restart = document.getElementById("restart-button");
  if (restart) {
    restart.addEventListener("click", function () {
      var device = document.getElementById("restart-device").value;
      if (!device || !window.confirm(t("fleet.confirm_restart", { terminal: terminal, device: device }))) { return; }
      HD.post("/api/terminals/" + encodeURIComponent(terminal) + "/restart", { device: device }).then(function (r) {
        status(r.ok ? r.data.message : r.error, r.ok ? "ok" : "error");
      });
    });
    document.getElementById("reset-button").addEventListener("click", function () {
      if (!window.confirm(t("fleet.confirm_reset", { terminal: terminal }))) { return; }
      HD.post("/api/terminals/" + encodeURIComponent(terminal) + "/reset", {}).then(function (r) {
        status(r.ok ? r.data.message : r.error, r.ok ? "ok" : "error");
      });
    });
  }

  var video = document.getElementById("remote-video");
  if (video) {
    // the picture takes room only while the kiosk's camera is shown
    video.classList.add("idle");
    video.addEventListener("loadedmetadata", function () { video.classList.remove("idle"); });
    video.addEventListener("emptied", function () { video.classList.add("idle"); });
  }

  HD.live("/api/events?call=" + encodeURIComponent(terminal + "/" + callId), {
    snapshot: function (snap) {
      var live = snap.live || {};
      (live.transcript || []).forEach(addTranscript);
      renderConsent(live.consent);
      if (live.mirror) {
        lastSeq = live.mirror_seq;
        renderMirror(live.mirror);
      }
      if (snap.call.state === "ended") { callEnded(snap.call); }
    },
    screen: function (data) {
      if (data.seq <= lastSeq && data.seq > lastSeq - 1000) { return; }
      lastSeq = data.seq;
      renderConsent(data.consent);
      renderMirror(data.mirror);
    },
    call: function (call) {
      renderConsent(call.consent);
      if (call.state === "ended") { callEnded(call); }
    },
    transcript: addTranscript,
  });
})();

// Help-call audio and video with the kiosk (WebRTC), on the call page.
//
// The page has <main id="call" data-terminal="..." data-call="...">, a button #start-media,
// a button #stop-media, a <video id="remote-video"> for the kiosk's camera, a status line
// #media-status, and optionally an <audio id="remote-audio"> (made here when missing).
//
// The staff member's browser makes the offer: video to receive (staff video is not needed),
// audio both ways (their microphone when there is one, else they only listen). ICE gathering
// is finished before the offer is sent (non-trickle), because the kiosk answers through the
// fleet channel in one message: POST /api/calls/<terminal>/<call>/media {sdp} -> {sdp}.
//
// STUN/TURN servers for the browser's side, when the kiosk and the console are not on one
// network, come as JSON in data-ice-servers on <main id="call"> ([{"urls": "turn:...",
// "username": "...", "credential": "..."}]); none by default.
//
// Status words come from data attributes on #media-status (data-connecting, data-connected,
// data-failed, data-stopped, data-listen-only, data-interrupted, data-no-picture), which the
// console fills from its texts; the fallbacks below are used when an attribute is missing.
(function () {
  "use strict";

  var FALLBACK = {
    connecting: "正在连接… / connecting…",
    connected: "已连接 / connected",
    failed: "失败 / failed",
    stopped: "已停止 / stopped",
    "listen-only": "没有麦克风，只能听 / no microphone: listening only",
    interrupted: "连接中断，正在恢复… / connection interrupted, recovering…",
    "no-picture": "终端暂无画面 / no picture from the kiosk",
  };
  var GATHER_WAIT_MS = 5000; // send what was gathered by then rather than wait for ever
  var HEADERS = { "Content-Type": "application/json", "X-Requested-With": "helpdesk" };

  var main = document.getElementById("call");
  if (!main) {
    return;
  }
  var startButton = document.getElementById("start-media");
  var stopButton = document.getElementById("stop-media");
  var statusLine = document.getElementById("media-status");
  var video = document.getElementById("remote-video");
  var base = "/api/calls/" + encodeURIComponent(main.dataset.terminal || "") + "/" +
    encodeURIComponent(main.dataset.call || "") + "/media";

  var pc = null;
  var microphone = null;
  var listenOnly = false;

  function iceServers() {
    try {
      var servers = JSON.parse(main.dataset.iceServers || "[]");
      return Array.isArray(servers) ? servers : [];
    } catch (ignored) {
      return [];
    }
  }

  function postStop() {
    return fetch(base + "/stop", {
      method: "POST", headers: HEADERS, credentials: "same-origin", body: "{}", keepalive: true,
    }).catch(function () { /* the kiosk closes the media itself when the call ends */ });
  }

  function words(key) {
    var attr = statusLine ? statusLine.getAttribute("data-" + key) : null;
    return attr || FALLBACK[key];
  }

  function setStatus(key, detail) {
    if (!statusLine) {
      return;
    }
    var text = words(key);
    if (detail) {
      text += ": " + detail;
    }
    if (listenOnly && (key === "connecting" || key === "connected")) {
      text += " (" + words("listen-only") + ")";
    }
    statusLine.textContent = text;
    statusLine.dataset.state = key;
  }

  function setButtons(running) {
    if (startButton) {
      startButton.disabled = running;
    }
    if (stopButton) {
      stopButton.disabled = !running;
    }
  }

  function audioElement() {
    var audio = document.getElementById("remote-audio");
    if (!audio) {
      audio = document.createElement("audio");
      audio.id = "remote-audio";
      audio.autoplay = true;
      audio.hidden = true;
      main.appendChild(audio);
    }
    return audio;
  }

  function gatheringComplete(connection) {
    if (connection.iceGatheringState === "complete") {
      return Promise.resolve();
    }
    return new Promise(function (resolve) {
      var timer = setTimeout(done, GATHER_WAIT_MS);
      function done() {
        clearTimeout(timer);
        connection.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
      function check() {
        if (connection.iceGatheringState === "complete") {
          done();
        }
      }
      connection.addEventListener("icegatheringstatechange", check);
    });
  }

  async function reasonOf(response) {
    var reason = response.status + " " + response.statusText;
    try {
      var body = await response.json();
      if (body && typeof body.detail === "string") {
        reason = body.detail;
      } else if (body && typeof body.error === "string") {
        reason = body.error;
      }
    } catch (ignored) {
      // not JSON: the status line says enough
    }
    return reason;
  }

  function release() {
    if (pc) {
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      pc.close();
      pc = null;
    }
    if (microphone) {
      microphone.getTracks().forEach(function (track) { track.stop(); });
      microphone = null;
    }
    if (video) {
      video.srcObject = null;
    }
    var audio = document.getElementById("remote-audio");
    if (audio) {
      audio.srcObject = null;
    }
  }

  function showTrack(event) {
    var track = event.track;
    var stream = new MediaStream([track]);
    if (track.kind === "video" && video) {
      video.muted = true; // the kiosk's voice plays through the audio element
      video.playsInline = true;
      video.srcObject = stream;
      video.play().catch(function () { /* autoplay refused: the picture shows on the next click */ });
      track.onmute = function () { if (pc) { setStatus("no-picture"); } };
      track.onunmute = function () { if (pc) { setStatus("connected"); } };
    } else if (track.kind === "audio") {
      var audio = audioElement();
      audio.srcObject = stream;
      audio.play().catch(function () { /* autoplay refused: plays once the page is clicked */ });
    }
  }

  function watch(connection) {
    connection.onconnectionstatechange = function () {
      if (connection !== pc) {
        return;
      }
      var state = connection.connectionState;
      if (state === "connected") {
        setStatus("connected");
      } else if (state === "disconnected") {
        setStatus("interrupted");
      } else if (state === "failed") {
        fail("the connection to the kiosk failed (network or firewall between them)");
      }
    };
  }

  function fail(reason) {
    var wasRunning = pc !== null;
    release();
    setButtons(false);
    setStatus("failed", reason);
    if (wasRunning) {
      postStop(); // let the kiosk free its camera and microphone now, not at its ICE timeout
    }
  }

  async function start() {
    if (pc) {
      return;
    }
    setButtons(true);
    listenOnly = false;
    setStatus("connecting");
    try {
      try {
        microphone = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      } catch (noMicrophone) {
        microphone = null; // no microphone, or not allowed: the staff member listens only
        listenOnly = true;
        setStatus("connecting");
      }
      var connection = new RTCPeerConnection({ iceServers: iceServers() });
      pc = connection;
      connection.ontrack = showTrack;
      watch(connection);
      connection.addTransceiver("video", { direction: "recvonly" });
      var micTrack = microphone ? microphone.getAudioTracks()[0] : null;
      if (micTrack) {
        connection.addTransceiver(micTrack, { direction: "sendrecv", streams: [microphone] });
      } else {
        connection.addTransceiver("audio", { direction: "sendrecv" });
      }
      await connection.setLocalDescription(await connection.createOffer());
      await gatheringComplete(connection);
      if (connection !== pc) {
        return; // stopped meanwhile
      }
      var response = await fetch(base, {
        method: "POST",
        headers: HEADERS,
        credentials: "same-origin",
        body: JSON.stringify({ sdp: connection.localDescription.sdp }),
      });
      if (!response.ok) {
        throw new Error(await reasonOf(response));
      }
      var answer = await response.json();
      if (connection !== pc) {
        return;
      }
      if (!answer || typeof answer.sdp !== "string") {
        throw new Error("the console's answer has no SDP");
      }
      await connection.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    } catch (err) {
      fail(err && err.message ? err.message : String(err));
    }
  }

  async function stop() {
    var wasRunning = pc !== null;
    release();
    setButtons(false);
    setStatus("stopped");
    if (wasRunning) {
      await postStop();
    }
  }

  if (startButton) {
    startButton.addEventListener("click", start);
  }
  if (stopButton) {
    stopButton.disabled = true;
    stopButton.addEventListener("click", stop);
  }
  window.addEventListener("pagehide", function () {
    if (pc) {
      stop();
    }
  });
})();

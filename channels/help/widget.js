/* 学信网账号问题助手: chat widget for the help page (no dependencies, nothing fetched elsewhere).
 *
 * Embed:  <div id="chsi-chat"></div>
 *         <script src="https://<assistant>/webhooks/help/widget.js" data-server="https://<assistant>"></script>
 * Talks to the REST channel (/webhooks/rest/webhook). Enter sends, except while an input method is
 * still composing (isComposing / keyCode 229); Shift+Enter is a new line. Buttons are clickable,
 * links too. The conversation (sender id and messages) is kept in sessionStorage, so it survives a
 * reload but not the closing of the tab, and is dropped after KEEP_MS without use: on a shared
 * lab PC the next student does not see the last one's questions. "新对话" clears it at once. The
 * sender id and its token are issued by the server (POST /webhooks/rest/session): every message,
 * screenshot and the stream show the token, so the id alone gives nobody else the conversation.
 * When the server no longer knows the token (its key changed), the widget asks for a new session
 * and sends the message again there. A typing indicator shows while the
 * assistant answers; when the server cannot be reached the widget says so, with the contacts
 * (data-unreachable, from the server's replies.yml).
 * Screenshots: the picture button, or pasting an image, sends a screenshot of the error page. It
 * is scaled in a canvas to at most MAX_SIDE pixels and sent as JPEG to /webhooks/rest/screenshot,
 * which reads its text; the picture itself is neither kept here nor stored by the server.
 * Live takeover: when a support agent takes the conversation over in the staff console, their
 * words arrive on /webhooks/rest/stream (Server-Sent Events) and show as "客服" messages.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var root = document.getElementById((script && script.getAttribute("data-target")) || "chsi-chat");
  if (!root) { return; }
  var server = ((script && script.getAttribute("data-server")) || window.location.origin).replace(/\/$/, "");
  var unreachable = root.getAttribute("data-unreachable") ||
    "暂时连不上助手，请稍后再试。";
  var KEY = "chsi-chat:" + server;
  var MAX_KEPT = 200;
  var KEEP_MS = 2 * 60 * 60 * 1000;  // two hours without a message: a new conversation
  var MAX_CHARS = 2000;  // what the server reads of one message (channels/limits.py)
  var MAX_SIDE = 2000;  // what the server reads of a screenshot (channels/ocr_reader.py)

  function randomId(prefix) {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return prefix + Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }
  function load() {
    try {
      var kept = JSON.parse(window.sessionStorage.getItem(KEY)) || {};
      return kept.savedAt && Date.now() - kept.savedAt < KEEP_MS ? kept : {};
    } catch (e) { return {}; }
  }
  var state = load();
  function fresh() {
    state = { sender: null, token: null, history: [] };
  }
  if (!state.sender || !state.token) { fresh(); }
  state.history = state.history || [];
  // The conversation's id and token, from the server; then(ok) once known (ok false: unreachable).
  function session(then) {
    if (state.token) { then(true); return; }
    var controller = window.AbortController ? new AbortController() : null;
    var timer = setTimeout(function () { if (controller) { controller.abort(); } }, 45000);
    fetch(server + "/webhooks/rest/session", {
      method: "POST",
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      clearTimeout(timer);
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (issued) {
      state.sender = issued.sender;
      state.token = issued.token;
      save();
      listen();
      then(true);
    }).catch(function () { then(false); });
  }
  function save() {
    state.history = state.history.slice(-MAX_KEPT);
    state.savedAt = Date.now();
    try { window.sessionStorage.setItem(KEY, JSON.stringify(state)); } catch (e) { /* private mode */ }
  }

  root.classList.add("chsi-chat");
  root.innerHTML =
    '<div class="chsi-log" role="log" aria-live="polite"></div>' +
    '<div class="chsi-typing" hidden><span></span><span></span><span></span></div>' +
    '<form class="chsi-form"><textarea class="chsi-input" rows="1" placeholder="输入你的问题，回车发送" ' +
    'aria-label="输入你的问题" maxlength="' + MAX_CHARS + '"></textarea>' +
    '<button type="button" class="chsi-picture" title="发送页面截图" aria-label="发送页面截图">截图</button>' +
    '<input type="file" class="chsi-file" accept="image/*" hidden>' +
    '<button type="submit" class="chsi-send">发送</button></form>' +
    '<button type="button" class="chsi-clear" title="清除这段对话，重新开始">新对话</button>';
  var log = root.querySelector(".chsi-log");
  var typing = root.querySelector(".chsi-typing");
  var form = root.querySelector(".chsi-form");
  var input = root.querySelector(".chsi-input");
  var clear = root.querySelector(".chsi-clear");
  var picture = root.querySelector(".chsi-picture");
  var file = root.querySelector(".chsi-file");

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function safeHref(url) {
    return /^(https?:\/\/|mailto:)/i.test(url) ? url : null;
  }
  function anchor(href, label) {
    var external = /^https?:/i.test(href) ? ' target="_blank" rel="noopener noreferrer"' : "";
    return '<a href="' + escapeHtml(href) + '"' + external + ">" + escapeHtml(label) + "</a>";
  }
  // Markdown links [label](url) and bare URLs become links; everything else is text.
  function format(text) {
    var out = "", last = 0, match;
    var pattern = /\[([^\]]+)\]\(([^)\s]+)\)|(https?:\/\/[^\s，。；）)”<]+)/g;
    while ((match = pattern.exec(text)) !== null) {
      out += escapeHtml(text.slice(last, match.index));
      var href = safeHref(match[2] || match[3]);
      out += href ? anchor(href, match[1] || match[3]) : escapeHtml(match[0]);
      last = pattern.lastIndex;
    }
    return (out + escapeHtml(text.slice(last))).replace(/\n/g, "<br>");
  }

  function show(entry) {
    var bubble = document.createElement("div");
    bubble.className = "chsi-msg chsi-" + entry.from;
    bubble.innerHTML = format(entry.text || "");
    log.appendChild(bubble);
    if (entry.buttons && entry.buttons.length) {
      var row = document.createElement("div");
      row.className = "chsi-buttons";
      entry.buttons.forEach(function (b) {
        var button = document.createElement("button");
        button.type = "button";
        button.className = "chsi-button";
        button.textContent = b.title;
        button.addEventListener("click", function () { send(b.payload, b.title); });
        row.appendChild(button);
      });
      log.appendChild(row);
    }
    log.scrollTop = log.scrollHeight;
  }
  function add(entry, keep) {
    if (keep !== false) { state.history.push(entry); save(); }
    show(entry);
  }

  var busy = false;
  function send(message, shown) {
    if (busy || !message.trim()) { return; }
    if (shown !== null) { add({ from: "user", text: shown || message }); }
    post("/webhooks/rest/webhook", { message: message });
  }
  function post(path, fields, retried) {
    busy = true;
    typing.hidden = false;
    session(function (ok) {
      if (ok) { deliver(path, fields, retried); return; }
      add({ from: "system", text: unreachable }, false);
      typing.hidden = true;
      busy = false;
    });
  }
  function deliver(path, fields, retried) {
    var controller = window.AbortController ? new AbortController() : null;
    var timer = setTimeout(function () { if (controller) { controller.abort(); } }, 45000);
    var body = { sender: state.sender, token: state.token, message_id: randomId("m-") };
    Object.keys(fields).forEach(function (k) { body[k] = fields[k]; });
    var again = false;
    fetch(server + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      // 413 (a picture over 4 MB) and 429 (too many messages) carry the student's words
      return response.json().catch(function () { return null; }).then(function (body) {
        var told = (response.status === 413 || response.status === 429) && Array.isArray(body);
        if (response.ok || told) { return body; }
        if (response.status === 403 && !retried) {  // the token is no longer known: a new session
          state.token = null;
          save();
          again = true;
          return [];
        }
        throw new Error("HTTP " + response.status);
      });
    }).then(function (messages) {
      if (again) { return; }
      if (!messages.length) { throw new Error("empty reply"); }
      messages.forEach(function (m) {
        // a person has taken the conversation over: their answer arrives on the stream
        if (m.custom && m.custom.takeover) { return; }
        add({ from: "bot", text: m.text || "", buttons: m.buttons || [] });
      });
    }).catch(function () {
      add({ from: "system", text: unreachable }, false);
    }).then(function () {
      clearTimeout(timer);
      if (again) { post(path, fields, true); return; }
      typing.hidden = true;
      busy = false;
    });
  }

  // A screenshot: drawn into a canvas no larger than MAX_SIDE, sent as a JPEG data URL.
  function sendPicture(blob) {
    if (busy || !blob || !/^image\//.test(blob.type)) { return; }
    busy = true;
    var url = URL.createObjectURL(blob);
    var image = new Image();
    image.onload = function () {
      var scale = Math.min(1, MAX_SIDE / Math.max(image.naturalWidth, image.naturalHeight));
      var canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(image.naturalWidth * scale));
      canvas.height = Math.max(1, Math.round(image.naturalHeight * scale));
      var context = canvas.getContext("2d");
      context.fillStyle = "#fff";
      context.fillRect(0, 0, canvas.width, canvas.height);
      context.drawImage(image, 0, 0, canvas.width, canvas.height);
      URL.revokeObjectURL(url);
      add({ from: "user", text: "［截图］" });
      post("/webhooks/rest/screenshot", { image: canvas.toDataURL("image/jpeg", 0.85) });
    };
    image.onerror = function () {
      URL.revokeObjectURL(url);
      busy = false;
      add({ from: "system", text: "这张图片打不开，请换一张截图，或者把提示文字打出来。" }, false);
    };
    image.src = url;
  }
  picture.addEventListener("click", function () { if (!busy) { file.click(); } });
  file.addEventListener("change", function () {
    if (file.files && file.files[0]) { sendPicture(file.files[0]); }
    file.value = "";
  });
  input.addEventListener("paste", function (event) {
    var items = (event.clipboardData && event.clipboardData.items) || [];
    for (var i = 0; i < items.length; i++) {
      if (items[i].kind === "file" && /^image\//.test(items[i].type)) {
        event.preventDefault();
        sendPicture(items[i].getAsFile());
        return;
      }
    }
  });

  input.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || event.shiftKey) { return; }
    if (event.isComposing || event.keyCode === 229) { return; }  // the IME is still composing
    event.preventDefault();
    form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    if (!text.trim() || busy) { return; }
    input.value = "";
    send(text);
  });

  // Live takeover: what a support agent types (and the notices that they joined or left) is
  // pushed on a Server-Sent Events stream; EventSource reconnects by itself.
  var stream = null;
  function listen() {
    if (stream) { stream.close(); }
    if (!window.EventSource || !state.token) { return; }
    stream = new EventSource(server + "/webhooks/rest/stream?sender=" +
      encodeURIComponent(state.sender) + "&token=" + encodeURIComponent(state.token));
    stream.onmessage = function (event) {
      try {
        var pushed = JSON.parse(event.data);
        var buttons = (Array.isArray(pushed.buttons) ? pushed.buttons : []).slice(0, 4)
          .filter(function (b) { return b && typeof b.title === "string" && typeof b.payload === "string"; })
          .map(function (b) { return { title: b.title.slice(0, 40), payload: b.payload.slice(0, 40) }; });
        add({ from: pushed.from === "agent" ? "agent" : "bot", text: String(pushed.text || ""),
              buttons: buttons });
      } catch (e) { /* not a message */ }
    };
  }

  clear.addEventListener("click", function () {
    if (busy) { return; }
    try { window.sessionStorage.removeItem(KEY); } catch (e) { /* private mode */ }
    fresh();
    if (stream) { stream.close(); stream = null; }
    log.innerHTML = "";
    send("/greet", null);
  });

  listen();
  state.history.forEach(show);
  if (!state.history.length) { send("/greet", null); }
})();

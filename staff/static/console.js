/* Staff console: keeps a taken-over conversation's transcript current (the ticket page's #live).
 * Every POLL_MS it asks /tickets/N/messages for the lines after the last one shown and appends
 * them as text (never as markup: the student's words are the student's). The list is an
 * aria-live region, so a screen reader reads new messages; nothing reloads, so a reply being
 * typed is kept. When the conversation is no longer taken over (handed back, or timed out) it
 * says so and stops. */
(function () {
  "use strict";
  var list = document.getElementById("live");
  if (!list || !window.fetch) { return; }
  var POLL_MS = 2500;
  var source = list.getAttribute("data-source");
  var last = parseInt(list.getAttribute("data-last"), 10) || 0;  // the last event shown
  var box = list.parentNode;
  box.scrollTop = box.scrollHeight;

  function line(entry) {
    var item = document.createElement("li");
    item.className = entry.sender;
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = entry.who;
    var at = document.createElement("span");
    at.className = "time";
    at.textContent = entry.at;
    var text = document.createElement("div");
    text.className = "text";
    text.textContent = entry.text;
    item.appendChild(who);
    item.appendChild(document.createTextNode(" "));
    item.appendChild(at);
    item.appendChild(text);
    return item;
  }

  function poll() {
    fetch(source + "?after=" + last, { credentials: "same-origin", cache: "no-store" })
      .then(function (reply) { return reply.ok ? reply.json() : null; })
      .then(function (news) {
        if (!news) { return setTimeout(poll, POLL_MS * 4); }
        news.lines.forEach(function (entry) { list.appendChild(line(entry)); });
        if (news.lines.length) { box.scrollTop = box.scrollHeight; }
        last = news.last;
        if (!news.held) {
          var ended = document.createElement("p");
          ended.className = "live-state";
          ended.setAttribute("role", "status");
          ended.textContent = "接管已结束，助手在回答这段对话。刷新页面查看最新状态。";
          box.parentNode.insertBefore(ended, box);
          return;
        }
        setTimeout(poll, POLL_MS);
      })
      .catch(function () { setTimeout(poll, POLL_MS * 4); });
  }
  setTimeout(poll, POLL_MS);
})();

/* A candidate model's page while it trains (#progress): every POLL_MS it asks
 * /admin/models/N/progress for the stages, Rasa's progress and the log's end, and shows them as
 * text; once the training and the gate are over it reloads the page, which then shows the gate's
 * report. (A timed meta refresh would reload under the reader's feet.) */
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box || !window.fetch) { return; }
  var POLL_MS = 3000;
  var source = box.getAttribute("data-source");
  var stages = document.getElementById("stages");
  var bar = document.getElementById("epochs");
  var percent = document.getElementById("percent");
  var log = document.getElementById("log-lines");

  function poll() {
    fetch(source, { credentials: "same-origin", cache: "no-store" })
      .then(function (reply) { return reply.ok ? reply.json() : null; })
      .then(function (news) {
        if (!news) { return setTimeout(poll, POLL_MS * 4); }
        if (news.status !== "training") { window.location.reload(); return; }
        while (stages.firstChild) { stages.removeChild(stages.firstChild); }
        news.stages.forEach(function (text) {
          var item = document.createElement("li");
          item.textContent = text;
          stages.appendChild(item);
        });
        if (news.percent !== null) {
          bar.value = news.percent;
          bar.textContent = news.percent + "%";
          percent.textContent = news.percent + "%";
        }
        if (log) { log.textContent = news.lines.join("\n"); }
        setTimeout(poll, POLL_MS);
      })
      .catch(function () { setTimeout(poll, POLL_MS * 4); });
  }
  setTimeout(poll, POLL_MS);
})();

/* Canned replies on a taken-over conversation's page (.canned-reply buttons): a click, or
 * Alt+1 … Alt+9 for the first nine, inserts the reply's text at the cursor in the reply box
 * (#say), within its maxlength; the agent reads it over and sends it. */
(function () {
  "use strict";
  var say = document.getElementById("say");
  var buttons = document.querySelectorAll(".canned-reply");
  if (!say || !buttons.length) { return; }

  function insert(text) {
    var start = say.selectionStart || 0;
    var end = say.selectionEnd || start;
    var before = say.value.slice(0, start);
    var after = say.value.slice(end);
    var room = (parseInt(say.getAttribute("maxlength"), 10) || 2000) - before.length - after.length;
    var added = text.slice(0, Math.max(0, room));
    say.value = before + added + after;
    say.focus();
    say.selectionStart = say.selectionEnd = before.length + added.length;
  }

  Array.prototype.forEach.call(buttons, function (button) {
    button.addEventListener("click", function () { insert(button.getAttribute("data-text")); });
  });
  document.addEventListener("keydown", function (event) {
    if (!event.altKey || event.ctrlKey || event.metaKey) { return; }
    var match = /^Digit([1-9])$/.exec(event.code || "");
    if (!match) { return; }
    var button = buttons[parseInt(match[1], 10) - 1];
    if (!button) { return; }
    event.preventDefault();
    button.click();
  });
})();

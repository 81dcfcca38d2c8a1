// Several conversations at once with the plain socket.io client (npm socket.io-client) and its
// default options: long-polling first, then the upgrade to a WebSocket. Used by
// tests/test_socketio_workers.py.
//
//   node socketio_conversations.js <server url> '<JSON list of questions>'
//
// Each question is asked in a conversation of its own: connect, session_request, user_uttered.
// Prints one JSON line: for each conversation, its session id, the transport it ended on, and
// its engine.io session id, the texts of the bot_uttered events it received (until 3 s pass without one, 60 s at most).
"use strict";
const { io } = require("socket.io-client");

const [server, questionsJson] = process.argv.slice(2);
const questions = JSON.parse(questionsJson);

function converse(question) {
  return new Promise((resolve) => {
    const socket = io(server, { reconnection: false });
    const result = { question, session: null, engine: null, transport: null, texts: [], error: null };
    let quiet = null;
    const finish = () => {
      result.transport = socket.io.engine ? socket.io.engine.transport.name : null;
      result.engine = socket.io.engine ? socket.io.engine.id : null;
      socket.close();
      resolve(result);
    };
    const giveUp = setTimeout(finish, 60000);
    socket.on("connect", () => socket.emit("session_request", { session_id: null }));
    socket.on("session_confirm", (session) => {
      result.session = session;
      // wait for the upgrade, so that the question travels over the WebSocket when there is one
      setTimeout(() => socket.emit("user_uttered", { message: question, session_id: session }), 500);
    });
    socket.on("bot_uttered", (message) => {
      result.texts.push(message.text || "");
      clearTimeout(quiet);
      quiet = setTimeout(() => { clearTimeout(giveUp); finish(); }, 3000);
    });
    socket.on("connect_error", (error) => { result.error = String(error); });
  });
}

Promise.all(questions.map(converse)).then((results) => {
  process.stdout.write(JSON.stringify(results) + "\n");
});

/// The chat page served at `/`: plain HTML and JavaScript (no build step) that keeps the
/// conversation in the page and streams each reply from `/v1/chat/completions`.
enum ChatPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Collie chat</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d2433; background: #f4f5f7; }
  body { margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header { padding: 10px 16px; background: #1d2433; color: #fff; display: flex; gap: 16px; align-items: center; }
  header h1 { font-size: 18px; margin: 0; }
  header label { font-size: 13px; opacity: .9; }
  header input { width: 64px; }
  #model { font-size: 13px; opacity: .8; margin-left: auto; }
  #log { flex: 1; overflow-y: auto; padding: 16px; display: flex; flex-direction: column; gap: 10px; }
  .message { max-width: 75%; padding: 10px 14px; border-radius: 12px; white-space: pre-wrap; line-height: 1.4; }
  .user { align-self: flex-end; background: #2f6fed; color: #fff; }
  .assistant { align-self: flex-start; background: #fff; border: 1px solid #d8dbe2; }
  .assistant.streaming::after { content: "▍"; opacity: .5; }
  .error { align-self: center; color: #b3261e; font-size: 14px; }
  form { display: flex; gap: 8px; padding: 12px 16px; background: #fff; border-top: 1px solid #d8dbe2; }
  textarea { flex: 1; resize: none; height: 48px; font: inherit; padding: 8px; }
  button { padding: 0 20px; font: inherit; }
</style>
</head>
<body>
<header>
  <h1>Collie chat</h1>
  <label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7"></label>
  <label>max tokens <input id="maxTokens" type="number" min="1" step="1" value="128"></label>
  <button id="clear" type="button">Clear</button>
  <span id="model">…</span>
</header>
<main id="log" aria-live="polite"></main>
<form id="form">
  <textarea id="input" placeholder="Send a message (Enter to send, Shift+Enter for a new line)"></textarea>
  <button id="send" type="submit">Send</button>
</form>
<script>
const log = document.getElementById("log");
const form = document.getElementById("form");
const input = document.getElementById("input");
const send = document.getElementById("send");
let model = null;
let history = [];
let apiKey = sessionStorage.getItem("collie-api-key") || "";

// fetch, with the API key when the server wants one (it answers 401: ask, remember it for this tab, retry).
async function call(path, options = {}) {
  for (;;) {
    const headers = Object.assign({}, options.headers, apiKey ? { Authorization: "Bearer " + apiKey } : {});
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (response.status !== 401) return response;
    const key = window.prompt("This server needs an API key:");
    if (!key) return response;
    apiKey = key;
    sessionStorage.setItem("collie-api-key", key);
  }
}

call("/v1/models").then(r => r.json()).then(list => {
  model = list.data[0].id;
  document.getElementById("model").textContent = "model: " + model;
  // For scripted checks and demos: /?prompt=TEXT types TEXT into the box and sends it.
  const prompt = new URLSearchParams(location.search).get("prompt");
  if (prompt) { input.value = prompt; form.requestSubmit(); }
}).catch(e => show("error", "cannot list models: " + e));

function show(kind, text) {
  const div = document.createElement("div");
  div.className = "message " + kind;
  div.textContent = text;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}

document.getElementById("clear").onclick = () => { history = []; log.innerHTML = ""; };
input.addEventListener("keydown", e => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
});

form.addEventListener("submit", async e => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text || !model) return;
  input.value = "";
  send.disabled = true;
  history.push({ role: "user", content: text });
  show("user", text);
  const bubble = show("assistant streaming", "");
  let reply = "", chunks = 0;
  try {
    const response = await call("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        model, messages: history, stream: true,
        temperature: Number(document.getElementById("temperature").value),
        max_tokens: Number(document.getElementById("maxTokens").value)
      })
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.error ? body.error.message : response.status + " " + response.statusText);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const delta = JSON.parse(data).choices[0].delta;
          if (delta.content) {
            reply += delta.content;
            bubble.textContent = reply;
            bubble.dataset.chunks = ++chunks;
            log.scrollTop = log.scrollHeight;
          }
        }
      }
    }
    history.push({ role: "assistant", content: reply });
    bubble.dataset.done = "true";
  } catch (error) {
    history.pop();
    show("error", String(error.message || error));
  } finally {
    bubble.classList.remove("streaming");
    send.disabled = false;
    input.focus();
  }
});
</script>
</body>
</html>
"""#
}

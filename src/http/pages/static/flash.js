// The flash-sale page's live parts: the countdown to the opening, the shopper's place in the
// queue and the estimated wait, the buy form the moment the queue admits them, and sold out
// the moment it happens (`follow_queue`, docs/realtime.md). The page states everything as the
// server sees it; this only keeps it current. Its words come from the page (`data-words`), in
// the page's language.

const queue = document.getElementById("queue");
let words = {};
try { words = JSON.parse(queue?.dataset.words || "{}"); } catch { words = {}; }
const fill = (text, key, value) => String(text || "").replace(`{${key}}`, String(value));

// --- The countdown to the opening ------------------------------------------------------------
const countdown = document.querySelector("[data-opens-at]");
let timer = null;
/** The sale is open (the queue admitted someone) or over: the countdown has nothing to count. */
function stopCountdown(open) {
  if (timer) clearInterval(timer);
  timer = null;
  if (!countdown) return;
  if (open) countdown.textContent = words.open || "";
  else countdown.hidden = true;
}
if (countdown) {
  const opensAt = Date.parse(countdown.dataset.opensAt);
  const tick = () => {
    const left = Math.max(0, Math.round((opensAt - Date.now()) / 1000));
    if (left <= 0) {
      countdown.textContent = words.open || "";
      if (timer) clearInterval(timer);
      return;
    }
    const hours = Math.floor(left / 3600);
    const minutes = Math.floor((left % 3600) / 60);
    const seconds = String(left % 60).padStart(2, "0");
    const clock = hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
    countdown.textContent = fill(words.opens, "t", clock);
  };
  tick();
  timer = setInterval(tick, 1000);
}

// --- The queue -------------------------------------------------------------------------------
function showState(state) {
  const node = document.getElementById("queue-state");
  if (!node) return;
  node.dataset.state = state;
  const strong = document.createElement("strong");
  strong.textContent = words[state] || state;
  node.replaceChildren(strong);
}

function showPosition(position, wait) {
  const node = document.getElementById("queue-position");
  if (!node) return;
  if (position === undefined || position === null) {
    node.replaceChildren();
    delete node.dataset.position;
    return;
  }
  let text = fill(words.position, "n", position);
  if (wait !== undefined && wait !== null) text += " · " + fill(words.wait, "s", wait);
  node.textContent = text;
  node.dataset.position = String(position);
}

function onQueue(message) {
  if (!queue || message.sale_id !== queue.dataset.sale) return;
  const state = message.state === "closed" && message.reason === "admission_expired"
    ? "admission_expired" : message.state;
  showState(state);
  const form = document.getElementById("buy-form");
  if (state === "waiting") {
    showPosition(message.position, message.estimated_wait_secs);
    return;
  }
  showPosition(null);
  stopCountdown(state === "admitted");
  if (state === "admitted") {
    const token = document.getElementById("admission-token");
    if (token && message.admission_token) token.value = message.admission_token;
    if (form) form.hidden = false;
    return;
  }
  // Sold out, closed, bought: nothing more to buy here.
  if (state === "sold_out") {
    const left = document.getElementById("units-left");
    if (left) left.textContent = "0";
  }
  if (form) form.hidden = true;
  for (const join of document.querySelectorAll("form.join")) join.hidden = true;
}

// The socket is live.js's: the same module (the page loads it by this URL), so one socket.
const live = document.querySelector('script[type="module"][src*="/static/live."]')?.src;
const following = queue?.dataset.ticket && ["waiting", "admitted"].includes(
  document.getElementById("queue-state")?.dataset.state);
if (live && following) {
  import(live).then((module) => {
    module.on("queue", onQueue);
    module.connect([{ type: "follow_queue", sale_id: queue.dataset.sale }]);
  });
}

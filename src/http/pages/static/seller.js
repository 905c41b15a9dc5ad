// The seller console's live parts: the order feed over `/ws/seller` (docs/realtime.md), with
// new orders inserted at the top as the server renders them, the open order's status, low-stock
// alerts, and a running flash sale's figures. Every page works without this file; it holds no
// words (they come from `#seller-live`, in the page's language) and no business rule: what
// changed is fetched as the server renders it.

const live = document.getElementById("seller-live");
const words = live ? live.dataset : {};
const feed = document.getElementById("order-feed");
const announcer = document.getElementById("feed-announcer");
const liveStatus = document.getElementById("live-status");
const alerts = document.getElementById("stock-alerts");
const orderStatus = document.getElementById("order-status");

/** Tells screen-reader users (and everyone) what happened, once. */
function announce(text) {
  const region = announcer || liveStatus;
  if (region) region.textContent = text;
}

/** A console page as the server renders it now; null when it cannot be read. */
async function fetchPage(url) {
  try {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!response.ok) return null;
    return new DOMParser().parseFromString(await response.text(), "text/html");
  } catch {
    return null;
  }
}

// --- The order feed ---------------------------------------------------------------------------
let wanted = false;
let merging = null;

/** Fetches the feed soon (events arriving together are fetched once). */
function refreshFeed() {
  if (!feed || !feed.dataset.live) return;
  wanted = true;
  if (!merging) merging = setTimeout(mergeFeed, 200);
}

/** Puts the server's newest orders into the list: new ones in their place (marked `new`),
 *  changed ones replaced. Order ids are time-ordered, so they sort as text. */
async function mergeFeed() {
  wanted = false;
  const page = await fetchPage("/seller/orders");
  merging = null;
  const fresh = page?.getElementById("order-feed");
  if (fresh) {
    let added = 0;
    for (const row of [...fresh.querySelectorAll(":scope > li[data-order]")]) {
      const id = row.dataset.order;
      const mine = [...feed.children].find((li) => li.dataset.order === id);
      if (mine) {
        // Changed (or rewritten by another script): the server's row, keeping its marks.
        if (mine.dataset.status !== row.dataset.status || mine.innerHTML !== row.innerHTML) {
          row.className = mine.className;
          mine.replaceWith(row);
        }
        continue;
      }
      const older = [...feed.children].find((li) => (li.dataset.order || "") < id);
      row.classList.add("new");
      feed.insertBefore(row, older || null);
      added += 1;
    }
    if (added > 0) {
      document.getElementById("feed-empty")?.remove();
      announce(added === 1 ? words.newOrder : `${words.newOrder} (${added})`);
    }
  }
  if (wanted) refreshFeed();
}

// --- The open order ---------------------------------------------------------------------------
async function refreshOrder() {
  const page = await fetchPage(location.pathname);
  const status = page?.getElementById("order-status");
  if (!status || !orderStatus) return;
  if (orderStatus.textContent !== status.textContent) orderStatus.textContent = status.textContent;
  orderStatus.dataset.status = status.dataset.status;
  const actions = page.getElementById("order-actions");
  const mine = document.getElementById("order-actions");
  if (actions && mine && mine.innerHTML !== actions.innerHTML) mine.replaceWith(actions);
}

// --- Low-stock alerts -------------------------------------------------------------------------
function lowStock(sku, available) {
  if (!alerts) return;
  const item = document.createElement("li");
  item.className = "error";
  item.textContent = String(words.lowStock || "{sku}: {n}")
    .replace("{sku}", String(sku))
    .replace("{n}", String(available));
  alerts.prepend(item);
  while (alerts.children.length > 5) alerts.lastElementChild.remove();
}

// --- The socket: resumed after the last event seen, with backoff -----------------------------
let lastEventId = null;
let retry = 500;
let failures = 0;

/** After a drop nobody saw events for, the page as the server has it now. */
function catchUp() {
  refreshFeed();
  if (orderStatus) refreshOrder();
}

/** Whether the session still signs in; if not, to sign-in and back here afterwards. */
async function checkSession() {
  try {
    const response = await fetch("/seller/orders", { credentials: "same-origin", redirect: "manual" });
    if (response.type === "opaqueredirect" || response.status === 303) {
      location.assign(`/seller?next=${encodeURIComponent(location.pathname + location.search)}`);
      return false;
    }
  } catch {
    // Offline: keep trying.
  }
  return true;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const resume = lastEventId ? `?last_event_id=${encodeURIComponent(lastEventId)}` : "";
  const socket = new WebSocket(`${scheme}//${location.host}${words.socket || "/ws/seller"}${resume}`);
  let opened = false;
  socket.addEventListener("open", () => {
    opened = true;
    retry = 500;
    failures = 0;
    if (liveStatus && liveStatus.textContent) liveStatus.textContent = words.online || "";
    // Without a last event id the feed starts now: read what may have come before.
    if (!lastEventId) catchUp();
  });
  socket.addEventListener("message", (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (message.type === "order_event") {
      lastEventId = message.id;
      refreshFeed();
      if (orderStatus && orderStatus.dataset.order === message.order_id) refreshOrder();
    } else if (message.type === "low_stock") {
      lowStock(message.sku, message.available);
    }
  });
  socket.addEventListener("close", async () => {
    if (liveStatus) liveStatus.textContent = words.offline || "";
    if (!opened) {
      failures += 1;
      // Refused before the upgrade: a signed-out session, or an id the feed no longer knows.
      if (failures % 3 === 0) {
        if (!(await checkSession())) return;
        lastEventId = null;
      }
    }
    const wait = retry + Math.floor(Math.random() * 250);
    retry = Math.min(retry * 2, 15000);
    setTimeout(connect, wait);
  });
}

if (live) connect();

// --- A running flash sale: its figures, refreshed from its page ------------------------------
const progress = document.getElementById("sale-progress");
if (progress && progress.dataset.live) {
  const timer = setInterval(async () => {
    if (document.hidden) return;
    const page = await fetchPage(location.pathname);
    const fresh = page?.getElementById("sale-progress");
    const current = document.getElementById("sale-progress");
    if (!fresh || !current) return;
    current.replaceWith(fresh);
    if (!fresh.dataset.live) clearInterval(timer);
  }, 2000);
}

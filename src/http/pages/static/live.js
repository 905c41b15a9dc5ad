// Agora's live pages: what the server renders, kept current over the WebSocket protocol
// (docs/realtime.md). Every page works without this file; it only makes changes appear
// without a reload. No business rule lives here: a changed cart is fetched as the server
// renders it.

const lang = document.documentElement.lang || "en";
const words = {
  en: { soldOut: "Sold out", inStock: "In stock", back: "Back in stock", left: (n) => `Only ${n} left`,
        expiring: "Your hold ends in under a minute", expired: "No longer held", offline: "Reconnecting…" },
  de: { soldOut: "Ausverkauft", inStock: "Auf Lager", back: "Wieder verfügbar", left: (n) => `Nur noch ${n} verfügbar`,
        expiring: "Ihre Reservierung endet in weniger als einer Minute", expired: "Nicht mehr reserviert", offline: "Verbindung wird wiederhergestellt…" },
  fr: { soldOut: "Épuisé", inStock: "En stock", back: "De nouveau en stock", left: (n) => `Plus que ${n} en stock`,
        expiring: "Votre réservation se termine dans moins d’une minute", expired: "Plus réservé", offline: "Reconnexion…" },
  ja: { soldOut: "売り切れ", inStock: "在庫あり", back: "再入荷", left: (n) => `残り${n}点`,
        expiring: "確保期限まで1分を切りました", expired: "確保が切れました", offline: "再接続中…" },
}[lang] || null;
const say = words || { soldOut: "Sold out", inStock: "In stock", back: "Back in stock", left: (n) => `Only ${n} left`,
  expiring: "Your hold ends in under a minute", expired: "No longer held", offline: "Reconnecting…" };

// An order's status in words, as the order page writes it (`status_words` in cart.rs).
const orderWords = {
  en: { pending: "Payment in progress", paid: "Paid", fulfilled: "Shipped", refunded: "Refunded", cancelled: "Cancelled" },
  de: { pending: "Zahlung läuft", paid: "Bezahlt", fulfilled: "Versandt", refunded: "Erstattet", cancelled: "Storniert" },
  fr: { pending: "Paiement en cours", paid: "Payée", fulfilled: "Expédiée", refunded: "Remboursée", cancelled: "Annulée" },
  ja: { pending: "支払い処理中", paid: "支払い済み", fulfilled: "発送済み", refunded: "返金済み", cancelled: "キャンセル" },
};
const orderSay = orderWords[lang] || orderWords.en;

document.documentElement.classList.add("js");

// The currency switcher changes on selection.
for (const select of document.querySelectorAll("select[data-autosubmit]")) {
  select.addEventListener("change", () => select.form.submit());
}

/** Tells screen-reader users what changed, once. */
function announce(text) {
  const status = document.getElementById("live-status");
  if (status) status.textContent = text;
}

// --- Stock of the SKUs on this page -------------------------------------------------------
function showStock(sku, available, status) {
  for (const node of document.querySelectorAll("[data-stock-sku]")) {
    if (node.dataset.stockSku.toUpperCase() !== sku.toUpperCase()) continue;
    node.classList.remove("sold-out", "low", "back");
    if (available <= 0) { node.textContent = say.soldOut; node.classList.add("sold-out"); }
    else if (status === "back_in_stock") { node.textContent = say.back; node.classList.add("back"); }
    else if (available <= 5) { node.textContent = say.left(available); node.classList.add("low"); }
    else { node.textContent = say.inStock; }
    const radio = node.closest(".variant")?.querySelector("input[type=radio]");
    if (radio) radio.disabled = available <= 0;
  }
}

// --- The cart: refreshed as the server renders it -------------------------------------------
// A form on its way (checkout, a quantity) answers with a page of its own: no refresh then.
let leaving = false;
addEventListener("submit", () => { leaving = true; });
addEventListener("pageshow", () => { leaving = false; });

async function refreshCart() {
  const section = document.getElementById("cart");
  if (!section || leaving) return;
  const response = await fetch("/cart", { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (!response.ok || leaving) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = page.getElementById("cart");
  if (fresh) { section.replaceWith(fresh); startCountdowns(); return; }
  // The cart was emptied elsewhere (checked out in another tab): show the page as it is now.
  const main = page.querySelector("main");
  if (main) document.querySelector("main")?.replaceWith(main);
}

// --- Hold countdowns ----------------------------------------------------------------------
let countdown = null;
function startCountdowns() {
  if (countdown) clearInterval(countdown);
  const tick = () => {
    for (const node of document.querySelectorAll("[data-hold-until]")) {
      const left = Math.round((Date.parse(node.dataset.holdUntil) - Date.now()) / 1000);
      if (left <= 0) { node.textContent = say.expired; node.classList.add("expiring"); continue; }
      const minutes = Math.floor(left / 60), seconds = String(left % 60).padStart(2, "0");
      node.textContent = `${minutes}:${seconds}`;
      if (left <= 60 && !node.classList.contains("expiring")) {
        node.classList.add("expiring");
        announce(say.expiring);
      }
    }
  };
  tick();
  countdown = setInterval(tick, 1000);
}
startCountdowns();

// --- An order's status --------------------------------------------------------------------
function showOrder(orderId, status) {
  for (const node of document.querySelectorAll("#order-status[data-order]")) {
    if (node.dataset.order !== orderId || !orderSay[status]) continue;
    node.textContent = orderSay[status];
    node.dataset.status = status;
  }
}

// --- The socket ---------------------------------------------------------------------------
const handlers = {
  order: (m) => showOrder(m.order_id, m.status),
  stock: (m) => showStock(m.sku, m.available, m.status),
  cart: () => refreshCart(),
  hold_expiring: (m) => {
    for (const row of document.querySelectorAll("[data-line]")) {
      if (row.dataset.line.toUpperCase() === String(m.sku).toUpperCase()) row.querySelector("[data-hold-until]")?.classList.add("expiring");
    }
    announce(say.expiring);
  },
};
/** Other scripts of a page add handlers for their message types. */
export function on(type, handler) { handlers[type] = handler; }

let socket = null;
let retry = 500;
export function connect(extraSubscriptions = []) {
  const follow = document.querySelector("[data-follow-skus]")?.dataset.followSkus;
  const cart = document.querySelector("[data-cart]")?.dataset.cart;
  const order = document.querySelector("#order-status[data-order]")?.dataset.order;
  if (!follow && !cart && !order && extraSubscriptions.length === 0) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const currency = document.body.dataset.currency || "";
  socket = new WebSocket(`${scheme}//${location.host}/ws?currency=${encodeURIComponent(currency)}`);
  socket.addEventListener("open", () => {
    retry = 500;
    document.getElementById("live-status")?.replaceChildren();
    if (follow) socket.send(JSON.stringify({ type: "subscribe", skus: follow.split(",").filter(Boolean) }));
    if (cart) socket.send(JSON.stringify({ type: "subscribe_cart", cart_id: cart }));
    if (order) socket.send(JSON.stringify({ type: "follow_order", order_id: order }));
    for (const message of extraSubscriptions) socket.send(JSON.stringify(message));
    // A reconnect may have missed changes: the cart as it is now.
    if (cart) refreshCart();
  });
  socket.addEventListener("message", (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    handlers[message.type]?.(message);
  });
  socket.addEventListener("close", () => {
    announce(say.offline);
    setTimeout(() => connect(extraSubscriptions), retry);
    retry = Math.min(retry * 2, 15000);
  });
}

if (!document.body.dataset.liveManual) connect();

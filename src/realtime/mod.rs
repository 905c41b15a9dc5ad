//! Realtime: live stock, carts and seller events over WebSockets, across every server process.
//!
//! A change is announced on Redis pub/sub (`crate::notices::publish`) by the process that
//! committed it; every process runs one listener ([`spawn_listener`]) that hands each announcement to its [`Hub`],
//! which forwards it to the sockets of that process subscribed to it. So a change on process A
//! reaches sockets on process B; a listener that loses Redis reconnects and resubscribes by
//! itself (announcements made meanwhile are lost to it: stock and carts are sent whole, so the
//! next one repairs a socket's view, and the seller feed is read from Postgres anyway).
//!
//! The socket layer is [`shopper`] (`GET /ws`) and [`seller`] (`GET /ws/seller`), one actor per
//! connection (actix-web-actors). The protocol is in `docs/realtime.md`.

pub mod hub;
pub mod seller;
pub mod shopper;

use std::time::Duration;

use futures_util::StreamExt;

pub use crate::notices::{since_published, Envelope, Notice, QueueAdmission};
pub use hub::{Hub, Hubs, LocalHub};

use agora_actors::cart::CartsHandle;

use crate::{
    carts::live::LiveCart, configuration::RedisSettings, credentials::CredentialCache,
    notices::channel,
};

/// Version of the message protocol, sent in every server message as `v`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest pause between two attempts of the listener to reconnect to Redis.
const LISTENER_RETRY: Duration = Duration::from_millis(500);

/// Listens to the channel until the process stops, reconnecting after any error, and hands
/// every notice to every hub; revocations go to the credential cache, which trusts nothing
/// from memory while the listener is not subscribed.
pub fn spawn_listener(
    settings: &RedisSettings,
    hubs: Hubs,
    credentials: CredentialCache,
    carts: CartsHandle<LiveCart>,
) {
    let client = settings.client();
    let channel = channel(&crate::hot_state::Keys::new(settings.prefix.clone()));
    actix_web::rt::spawn(async move {
        let client = match client {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "realtime listener has no Redis client");
                return;
            }
        };
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                    Ok(()) => {
                        tracing::info!("realtime listener subscribed");
                        credentials.listening(true);
                        metrics::gauge!("agora_realtime_listener_connected").set(1.0);
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            let Ok(payload) = message.get_payload::<String>() else {
                                continue;
                            };
                            match serde_json::from_str::<Envelope>(&payload) {
                                Ok(Envelope {
                                    notice: Notice::Revoked { revocation },
                                    ..
                                }) => credentials.forget(&revocation),
                                Ok(envelope) => {
                                    if let Notice::Cart {
                                        cart_id, version, ..
                                    } = &envelope.notice
                                    {
                                        carts.forget_older(*cart_id, *version);
                                    }
                                    hubs.dispatch(envelope)
                                }
                                Err(error) => {
                                    tracing::warn!(%error, "unreadable realtime notice")
                                }
                            }
                        }
                        credentials.listening(false);
                        metrics::gauge!("agora_realtime_listener_connected").set(0.0);
                        tracing::warn!("realtime listener lost Redis; reconnecting");
                    }
                    Err(error) => tracing::warn!(%error, "realtime subscribe failed"),
                },
                Err(error) => tracing::debug!(%error, "realtime listener cannot reach Redis"),
            }
            metrics::counter!("agora_realtime_listener_reconnects_total").increment(1);
            tokio::time::sleep(LISTENER_RETRY).await;
        }
    });
}

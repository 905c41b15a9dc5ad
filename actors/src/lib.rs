//! Agora's actor system: the actors that own keys (inventory shards, live carts, flash-sale
//! queues, the recommender, background chores such as the mail sender), the messages they
//! exchange, and how they are supervised and stopped. They know neither the web framework nor
//! the database: the server crate hands them what to run. The socket actors (shopper sockets,
//! seller sessions and their hubs) live with the server's WebSocket layer, `agora::realtime`,
//! as they are actix-web-actors.
//!
//! Every actor that buffers writes registers with the [`lifecycle::ActorRegistry`], so a
//! graceful shutdown can ask it to persist what it holds before the process exits.

pub mod cart;
pub mod flash_sale;
pub mod inventory;
pub mod lifecycle;
pub mod periodic;
pub mod recommender;

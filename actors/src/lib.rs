//! Agora's actor system: the actors that own keys (inventory shards, carts, seller sessions,
//! flash-sale queues, the recommender), the messages they exchange, and how they are supervised
//! and stopped.
//!
//! Every actor that buffers writes registers with the [`lifecycle::ActorRegistry`], so a
//! graceful shutdown can ask it to persist what it holds before the process exits.

pub mod cart;
pub mod flash_sale;
pub mod inventory;
pub mod lifecycle;
pub mod recommender;

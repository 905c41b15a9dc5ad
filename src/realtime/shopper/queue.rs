//! A shopper socket following flash-sale queues: its ticket's state and position, and its
//! admission the moment it comes.

use super::*;
use crate::flash_sales::{SaleState, TicketState};

impl ShopperSocket {
    pub(super) fn send_queue(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        sale_id: Uuid,
        status: &flash_sales::QueueStatus,
    ) {
        let mut message = serde_json::to_value(status).unwrap_or_default();
        message["type"] = json!("queue");
        message["sale_id"] = json!(sale_id);
        self.send(ctx, message);
    }

    /// Follows the shopper's ticket in a sale's queue: its status now, then live positions,
    /// the admission with its token, or sold out / closed.
    pub(super) fn follow_queue(&mut self, sale_id: Uuid, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(shopper) = self.shopper else {
            self.error(
                ctx,
                Code::Unauthorized,
                "connect with your shopper token (?token= or Authorization) to follow a queue",
            );
            return;
        };
        if self.queues.contains_key(&sale_id) {
            return;
        }
        if self.follows() >= MAX_SUBSCRIPTIONS {
            self.error(ctx, Code::TooManySubscriptions, "too many subscriptions");
            return;
        }
        // Subscribed before reading, so no announcement falls between the read and the
        // subscription; the ticket number is filled in by the read.
        for topic in [Topic::Queue(sale_id), Topic::Ticket(sale_id, shopper)] {
            self.hub.do_send(hub::Subscribe { id: self.id, topic });
        }
        self.queues.insert(sale_id, i64::MAX);
        let state = self.state.clone();
        let read = async move {
            let client = state.pool.get().await?;
            flash_sales::status(&*client, &state.flash_sales.admission_key, sale_id, shopper).await
        };
        ctx.spawn(
            read.into_actor(self)
                .map(move |status, socket, ctx| match status {
                    Ok(status) => {
                        socket.send_queue(ctx, sale_id, &status);
                        if matches!(status.state, TicketState::Waiting | TicketState::Admitted) {
                            socket.queues.insert(sale_id, status.ticket);
                        } else {
                            socket.unfollow_queue(sale_id);
                        }
                    }
                    Err(error) => {
                        socket.unfollow_queue(sale_id);
                        let code = error.code();
                        let message = if code == Code::NotFound {
                            "join the queue first (POST /api/v1/flash-sales/{id}/queue)"
                        } else {
                            "the queue cannot be read now"
                        };
                        socket.error(ctx, code, message);
                    }
                }),
        );
    }

    pub(super) fn unfollow_queue(&mut self, sale_id: Uuid) {
        if self.queues.remove(&sale_id).is_none() {
            return;
        }
        let mut topics = vec![Topic::Queue(sale_id)];
        if let Some(shopper) = self.shopper {
            topics.push(Topic::Ticket(sale_id, shopper));
        }
        for topic in topics {
            self.hub.do_send(hub::Unsubscribe { id: self.id, topic });
        }
    }

    pub(super) fn queue_notice(&mut self, notice: &Notice, ctx: &mut ws::WebsocketContext<Self>) {
        match notice {
            Notice::QueueAdmitted {
                sale_id,
                admissions,
            } => {
                let Some(shopper) = self.shopper else {
                    return;
                };
                let Some(admitted) = admissions.iter().find(|a| a.shopper_id == shopper) else {
                    return;
                };
                let admission = flash_sales::admission::Admission {
                    sale_id: *sale_id,
                    shopper_id: shopper,
                    ticket: admitted.ticket,
                    expires_at: admitted.expires_at,
                };
                let status = flash_sales::QueueStatus {
                    admission_token: Some(self.state.flash_sales.admission_key.sign(&admission)),
                    admission_expires_at: Some(admitted.expires_at),
                    ..flash_sales::QueueStatus::new(TicketState::Admitted, admitted.ticket)
                };
                self.queues.insert(*sale_id, admitted.ticket);
                self.send_queue(ctx, *sale_id, &status);
            }
            Notice::QueuePositions {
                sale_id,
                state,
                admitted_through,
                admissions_per_sec,
                ..
            } => {
                let Some(&ticket) = self.queues.get(sale_id) else {
                    return;
                };
                let mut status = flash_sales::QueueStatus::new(TicketState::Waiting, ticket);
                match SaleState::parse(state) {
                    Some(SaleState::SoldOut) => status.state = TicketState::SoldOut,
                    Some(SaleState::Closed) => {
                        status.state = TicketState::Closed;
                        status.reason = Some("sale_ended");
                    }
                    // Admitted already (told so by its own notice), or not read yet.
                    _ if ticket <= *admitted_through || ticket == i64::MAX => return,
                    _ => {
                        let position = flash_sales::position(ticket, *admitted_through);
                        status.position = Some(position);
                        status.estimated_wait_secs =
                            flash_sales::estimated_wait(position, *admissions_per_sec);
                    }
                }
                self.send_queue(ctx, *sale_id, &status);
                if status.state != TicketState::Waiting {
                    self.unfollow_queue(*sale_id);
                }
            }
            _ => {}
        }
    }
}

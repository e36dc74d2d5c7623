//! Flow control: what stands between a sender and a cell when the cell
//! cannot keep up.
//!
//! - `router.rs`: [`Router`], an address spread over member addresses
//!   (round-robin, least-loaded, consistent hash, broadcast), whose members
//!   change while messages flow.
//! - `shedding.rs`: [`Shedding`], an address's admission policy by priority
//!   class: the lowest classes are refused first as a mailbox fills, each
//!   handed back as `SendError::Shed`.
//!
//! Deadlines travel with messages (see [`Addr::ask_within`](crate::Addr::ask_within)):
//! a message whose deadline passed before its turn is dead-lettered as
//! expired instead of handled.
//!
//! These mechanisms know nothing of recomposition; recomposition creates
//! and reconfigures them through their public types.

mod router;
mod shedding;

pub use self::router::{Router, RouterError, RouterStats, Routing};
pub use self::shedding::{Shedding, SheddingError, SheddingStats, MAX_CLASS};

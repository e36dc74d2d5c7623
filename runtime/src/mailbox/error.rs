//! Errors of sending a message. Each carries the rejected message back.

use std::fmt;

/// A message the target did not accept, handed back to the sender.
///
/// Returned by [`Addr::try_send`](crate::Addr::try_send) (never `Timeout`),
/// [`Addr::send`](crate::Addr::send), [`Addr::send_timeout`](crate::Addr::send_timeout)
/// and [`Addr::ask`](crate::Addr::ask). Take the message back with
/// [`into_inner`](SendError::into_inner).
///
/// `Debug` and `Display` never print the message, so `M` needs no `Debug`
/// bound and message contents stay out of logs.
///
/// # Examples
///
/// ```
/// use cellrt::SendError;
///
/// let err = SendError::Full(7_u32);
/// assert!(err.is_full());
/// assert_eq!(err.to_string(), "mailbox full");
/// assert_eq!(err.into_inner(), 7);
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError<M> {
    /// The mailbox is at capacity. From `send` on a worker thread this comes
    /// back at once instead of blocking (see the `Addr` docs).
    Full(M),
    /// The cell behind the address has stopped, or the runtime shut down.
    Closed(M),
    /// The mailbox stayed full until the send deadline passed, or the
    /// deadline had passed before the send
    /// ([`Addr::ask_within`](crate::Addr::ask_within) with a zero timeout).
    Timeout(M),
    /// The address's load-shedding policy refused the message: the target
    /// is past the watermark of the message's priority class (see
    /// [`Shedding`](crate::Shedding)). Never waits for room.
    Shed(M),
    /// A cell asked its own address ([`Addr::ask`](crate::Addr::ask) from
    /// its own handler or hook): it could only answer after the handler
    /// returns, so the request is refused at once and nothing is sent.
    SelfAsk(M),
}

impl<M> SendError<M> {
    /// Takes back the message that was not delivered.
    pub fn into_inner(self) -> M {
        match self {
            SendError::Full(m)
            | SendError::Closed(m)
            | SendError::Timeout(m)
            | SendError::Shed(m)
            | SendError::SelfAsk(m) => m,
        }
    }

    /// A reference to the message that was not delivered.
    pub fn message(&self) -> &M {
        match self {
            SendError::Full(m)
            | SendError::Closed(m)
            | SendError::Timeout(m)
            | SendError::Shed(m)
            | SendError::SelfAsk(m) => m,
        }
    }

    /// The mailbox was full.
    pub fn is_full(&self) -> bool {
        matches!(self, SendError::Full(_))
    }

    /// The target has stopped.
    pub fn is_closed(&self) -> bool {
        matches!(self, SendError::Closed(_))
    }

    /// The deadline passed before there was room.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendError::Timeout(_))
    }

    /// The message was shed by the address's load-shedding policy.
    pub fn is_shed(&self) -> bool {
        matches!(self, SendError::Shed(_))
    }

    /// A cell asked its own address.
    pub fn is_self_ask(&self) -> bool {
        matches!(self, SendError::SelfAsk(_))
    }

    /// The same error carrying `f(message)`, for forwarding code.
    pub fn map<N>(self, f: impl FnOnce(M) -> N) -> SendError<N> {
        match self {
            SendError::Full(m) => SendError::Full(f(m)),
            SendError::Closed(m) => SendError::Closed(f(m)),
            SendError::Timeout(m) => SendError::Timeout(f(m)),
            SendError::Shed(m) => SendError::Shed(f(m)),
            SendError::SelfAsk(m) => SendError::SelfAsk(f(m)),
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("Full(..)"),
            SendError::Closed(_) => f.write_str("Closed(..)"),
            SendError::Timeout(_) => f.write_str("Timeout(..)"),
            SendError::Shed(_) => f.write_str("Shed(..)"),
            SendError::SelfAsk(_) => f.write_str("SelfAsk(..)"),
        }
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Full(_) => "mailbox full",
            SendError::Closed(_) => "cell stopped",
            SendError::Timeout(_) => "send deadline passed before the mailbox had room",
            SendError::Shed(_) => "shed: the target is past the watermark of the message's class",
            SendError::SelfAsk(_) => "a cell cannot ask itself: it answers only after its handler returns",
        })
    }
}

impl<M> std::error::Error for SendError<M> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_hands_its_message_back() {
        assert_eq!(SendError::Full(1).into_inner(), 1);
        assert_eq!(SendError::Closed(2).into_inner(), 2);
        assert_eq!(SendError::Timeout(3).into_inner(), 3);
        assert_eq!(SendError::Shed(4).into_inner(), 4);
        assert!(SendError::Shed(4).is_shed() && !SendError::Full(4).is_shed());
        assert_eq!(SendError::SelfAsk(5).into_inner(), 5);
        assert!(SendError::SelfAsk(5).is_self_ask() && !SendError::Shed(5).is_self_ask());
    }

    #[test]
    fn debug_and_display_do_not_print_the_message() {
        struct Secret;
        assert_eq!(format!("{:?}", SendError::Closed(Secret)), "Closed(..)");
        assert_eq!(
            SendError::Timeout(Secret).to_string(),
            "send deadline passed before the mailbox had room"
        );
        assert_eq!(format!("{:?}", SendError::SelfAsk(Secret)), "SelfAsk(..)");
    }

    #[test]
    fn map_keeps_the_variant() {
        let err = SendError::Timeout(2_u8).map(|n| u32::from(n) * 10);
        assert!(err.is_timeout());
        assert_eq!(*err.message(), 20);
    }
}

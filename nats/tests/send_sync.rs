//! Every public type of the bridge is `Send` and `Sync` (a `Remote<M>` for
//! any bridged `M`), so handles can be shared with and moved to any thread.

use cellrt_nats::{
    Answers, Asks, Bridge, BridgeConfig, BridgeError, Codec, CodecError, Export, ExportStats, ImportStats,
    Rejected, Remote, RemoteSendError, SetupError, Side, SubjectError,
};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

struct Message;

impl cellrt_nats::Bridged for Message {
    type Wire = ();
    fn into_wire(self, _asks: &mut Asks) {}
    fn from_wire(_wire: (), _answers: &mut Answers) -> Self {
        Message
    }
}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Bridge>();
    send_sync::<BridgeConfig>();
    send_sync::<BridgeError>();
    send_sync::<Codec>();
    send_sync::<CodecError>();
    send_sync::<Export>();
    send_sync::<ExportStats>();
    send_sync::<ImportStats>();
    send_sync::<Rejected>();
    send_sync::<Remote<Message>>();
    send_sync::<RemoteSendError<Message>>();
    send_sync::<SetupError>();
    send_sync::<Side>();
    send_sync::<SubjectError>();
    // The reply slots live inside one call on one thread.
    send::<Asks>();
    send::<Answers>();
}

//! Fuzzes the frame and batch decoders: any bytes must decode or fail, never panic, hang or
//! allocate beyond the limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_shared::codec::{decode_batch, decode_frame, AgentMessage, CollectorMessage};

fuzz_target!(|data: &[u8]| {
    let _ = decode_frame::<AgentMessage>(data);
    let _ = decode_frame::<CollectorMessage>(data);
    if let Ok(AgentMessage::Batch { payload, .. }) = decode_frame::<AgentMessage>(data) {
        let _ = decode_batch(&payload);
    }
    let _ = decode_batch(data);
});

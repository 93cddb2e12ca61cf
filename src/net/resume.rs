//! A call's resumption on a new TCP connection, with no I/O: the caller
//! sends a Hello naming the call by its ticket's id and the first message
//! of the resumption's Noise handshake (`secure::Handshake::resuming`);
//! the callee answers with the second; the caller proves it holds the new
//! keys with a sealed empty message, and waits for the callee's first
//! sealed message (which must open), which the callee sends only once its
//! call took the resumption. So neither side moves its call over for a peer that is not
//! live now: a stranger, or someone replaying a captured resumption, gets
//! no further than message 2 and a closed connection, and the call it
//! names goes on as it was.
//!
//! Whoever drives it feeds the peer's bytes in (`handle_bytes`), sends
//! what `take_outgoing` gives, and gives up at `deadline`.

use std::time::Instant;

use std::time::Duration;

use super::connection::{HANDSHAKE_TIMEOUT, MAX_SEALED_LEN, Role};
use crate::call::ProtocolError;
use crate::secure::{self, Handshake, Opener, Sealer, Ticket};
use crate::wire::{self, FrameDecoder, Hello, MAX_HELLO_LEN};

/// How long the callee waits for a caller to prove itself.
pub const PROOF_TIMEOUT: Duration = Duration::from_secs(2);

/// A resumption that went through: the new connection's keys, for ticket
/// `generation`, and the peer's bytes that came after it.
pub struct Resumed {
    pub generation: u64,
    pub keys: (Sealer, Opener),
    pub leftover: Vec<u8>,
}

enum Step {
    /// The callee waits for the Hello, the caller for message 2.
    Greeting,
    /// The callee waits for message 1.
    First,
    /// The handshake is done; waiting for the peer's first sealed message
    /// (the caller's proof, or the callee's word that it took it).
    Proof {
        keys: Box<(Sealer, Opener)>,
    },
    Over,
}

/// One side of a resumption. See the module documentation.
pub struct Resumption {
    role: Role,
    /// The callee's: the tickets the call may be resumed with.
    tickets: Vec<Ticket>,
    /// The ticket's number.
    generation: u64,
    noise: Option<Box<Handshake>>,
    decoder: FrameDecoder,
    outgoing: Vec<u8>,
    step: Step,
    deadline: Instant,
}

impl Resumption {
    /// The caller's side at `now`, with the call's current `ticket`: its
    /// Hello and message 1 are ready to send.
    pub fn caller(ticket: &Ticket, now: Instant) -> Result<Resumption, ProtocolError> {
        let mut noise = Handshake::resuming(true, ticket).map_err(ProtocolError::Secure)?;
        let mut hello = Vec::new();
        wire::encode_payload(&Hello::resuming(ticket.id), MAX_HELLO_LEN, &mut hello)
            .map_err(ProtocolError::Wire)?;
        let mut outgoing = Vec::new();
        wire::frame(&hello, &mut outgoing);
        let first = noise.write(&[]).map_err(ProtocolError::Secure)?;
        wire::frame(&first, &mut outgoing);
        Ok(Resumption {
            outgoing,
            generation: ticket.generation,
            noise: Some(Box::new(noise)),
            ..Self::new(Role::Caller, now)
        })
    }

    /// The callee's side at `now`, for a connection that may resume the
    /// call with one of its `tickets`. The caller has [`PROOF_TIMEOUT`]
    /// to prove itself: it sent its first message with its Hello, and the
    /// proof goes one round trip later.
    pub fn callee(tickets: Vec<Ticket>, now: Instant) -> Resumption {
        Resumption {
            tickets,
            deadline: now + PROOF_TIMEOUT,
            ..Self::new(Role::Callee, now)
        }
    }

    fn new(role: Role, now: Instant) -> Resumption {
        Resumption {
            role,
            tickets: Vec::new(),
            generation: 0,
            noise: None,
            decoder: FrameDecoder::new(MAX_HELLO_LEN),
            outgoing: Vec::new(),
            step: Step::Greeting,
            deadline: now + HANDSHAKE_TIMEOUT,
        }
    }

    /// When the peer must have finished its part.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The bytes to send now.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outgoing)
    }

    /// The peer's bytes: Ok(Some) once the resumption went through, an
    /// error once it cannot.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<Option<Resumed>, ProtocolError> {
        self.decoder.extend(bytes);
        loop {
            let payload = match self.decoder.next_payload() {
                Ok(Some(payload)) => payload.to_vec(),
                Ok(None) => return Ok(None),
                Err(e) => return Err(ProtocolError::Wire(e)),
            };
            if let Some(done) = self.step(&payload)? {
                return Ok(Some(done));
            }
        }
    }

    fn step(&mut self, payload: &[u8]) -> Result<Option<Resumed>, ProtocolError> {
        let secure = ProtocolError::Secure;
        match (std::mem::replace(&mut self.step, Step::Over), self.role) {
            (Step::Greeting, Role::Callee) => {
                let hello = wire::decode_hello(payload).map_err(ProtocolError::Wire)?;
                let ticket = self
                    .tickets
                    .iter()
                    .find(|t| hello.resume == Some(t.id))
                    .ok_or(ProtocolError::NothingToResume)?;
                let noise = Handshake::resuming(false, ticket).map_err(secure)?;
                self.generation = ticket.generation;
                self.noise = Some(Box::new(noise));
                self.decoder.set_max_len(secure::NOISE_MAX as u64);
                self.step = Step::First;
            }
            (Step::First, Role::Callee) => {
                let mut noise = self.noise.take().ok_or(ProtocolError::NothingToResume)?;
                noise.read(payload).map_err(secure)?;
                let second = noise.write(&[]).map_err(secure)?;
                wire::frame(&second, &mut self.outgoing);
                self.finish(*noise)?;
            }
            (Step::Greeting, Role::Caller) => {
                let mut noise = self.noise.take().ok_or(ProtocolError::NothingToResume)?;
                noise.read(payload).map_err(secure)?;
                self.finish(*noise)?;
                if let Step::Proof { keys } = &mut self.step {
                    let mut sealed = Vec::new();
                    keys.0.seal(&[], &mut sealed).map_err(secure)?;
                    wire::frame(&sealed, &mut self.outgoing);
                }
            }
            (Step::Proof { mut keys }, Role::Callee) => {
                let mut plain = Vec::new();
                keys.1.open(payload, &mut plain).map_err(secure)?;
                let leftover = self.decoder.buffered().to_vec();
                return Ok(Some(self.resumed(*keys, leftover)));
            }
            // Only the callee's own words, which it sends once it took the
            // call, move ours over; the call opens them again.
            (Step::Proof { keys }, Role::Caller) => {
                keys.1
                    .clone()
                    .open(payload, &mut Vec::new())
                    .map_err(secure)?;
                let mut leftover = Vec::new();
                wire::frame(payload, &mut leftover);
                leftover.extend_from_slice(self.decoder.buffered());
                return Ok(Some(self.resumed(*keys, leftover)));
            }
            // Each side's steps are only its own; past the end, nothing.
            (Step::First, Role::Caller) | (Step::Over, _) => {
                return Err(ProtocolError::NothingToResume);
            }
        }
        Ok(None)
    }

    fn finish(&mut self, noise: Handshake) -> Result<(), ProtocolError> {
        let done = noise.finish().map_err(ProtocolError::Secure)?;
        // The caller's proof is an empty sealed message; the callee's first
        // words are the call's own.
        self.decoder.set_max_len(match self.role {
            Role::Callee => secure::sealed_len(0) as u64,
            Role::Caller => MAX_SEALED_LEN,
        });
        self.step = Step::Proof {
            keys: Box::new((done.sealer, done.opener)),
        };
        Ok(())
    }

    fn resumed(&self, keys: (Sealer, Opener), leftover: Vec<u8>) -> Resumed {
        Resumed {
            generation: self.generation,
            keys,
            leftover,
        }
    }
}

#[cfg(test)]
mod tests {
    //! A call's two connections joined in memory on a fake clock, the link
    //! cut and given back, and resumptions run between them as the threads
    //! would (no sockets, no sleeps).
    use std::time::Duration;

    use super::*;
    use crate::call::{EndReason, IDLE_TIMEOUT, RECONNECT_TIMEOUT};
    use crate::net::connection::tests::{Pair, ended, events, frame, frames, key};
    use crate::net::connection::{Event, SILENT_LINK};

    /// Runs a caller's and a callee's resumption to the end, the callee's
    /// call taking it over (its first words go back through the caller's
    /// resumption); the caller's outcome.
    fn resume(pair: &mut Pair, caller: &mut Resumption, callee: &mut Resumption) -> bool {
        let to_callee = caller.take_outgoing();
        assert!(callee.handle_bytes(&to_callee).unwrap().is_none());
        let to_caller = callee.take_outgoing();
        assert!(caller.handle_bytes(&to_caller).unwrap().is_none());
        let proof = caller.take_outgoing();
        let Some(done) = callee.handle_bytes(&proof).unwrap() else {
            panic!("the callee did not take the proof");
        };
        assert!(
            pair.callee
                .resume(pair.now, done.generation, done.keys, &done.leftover)
        );
        let mut first = Vec::new();
        pair.callee.take_outgoing(&mut first);
        let Some(done) = caller.handle_bytes(&first).unwrap() else {
            panic!("the caller did not hear the callee take it");
        };
        pair.caller
            .resume(pair.now, done.generation, done.keys, &done.leftover)
    }

    fn resumptions(pair: &Pair) -> (Resumption, Resumption) {
        let now = pair.now;
        (
            Resumption::caller(&pair.caller.ticket().unwrap(), now).unwrap(),
            Resumption::callee(pair.callee.tickets(), now),
        )
    }

    /// An answered call whose link has been cut for 2 s: both sides
    /// reconnecting.
    fn silent_for_two_seconds() -> Pair {
        let mut pair = Pair::answered();
        cut(&mut pair, true);
        pair.advance(Duration::from_secs(2));
        pair
    }

    /// A resumption run as far as the caller's proof, which waits in the
    /// caller's outgoing bytes.
    fn up_to_the_proof(pair: &Pair) -> (Resumption, Resumption) {
        let (mut caller, mut callee) = resumptions(pair);
        assert!(
            callee
                .handle_bytes(&caller.take_outgoing())
                .unwrap()
                .is_none()
        );
        assert!(
            caller
                .handle_bytes(&callee.take_outgoing())
                .unwrap()
                .is_none()
        );
        (caller, callee)
    }

    fn cut(pair: &mut Pair, cut: bool) {
        pair.deliver_to_caller = !cut;
        pair.deliver_to_callee = !cut;
    }

    fn reconnecting(events: &[Event]) -> bool {
        events.contains(&Event::Reconnecting)
    }

    #[test]
    fn a_ten_second_outage_is_a_pause_and_the_call_resumes_with_a_keyframe() {
        let mut pair = Pair::answered();
        pair.callee.send_frame(frame(1, true)).unwrap();
        pair.advance(Duration::from_millis(100));
        assert_eq!(frames(&mut pair.caller), [1]);
        cut(&mut pair, true);
        pair.advance(SILENT_LINK + Duration::from_millis(50));
        assert!(reconnecting(&events(&mut pair.caller)));
        assert!(reconnecting(&events(&mut pair.callee)));
        // No video is sealed for a dead link.
        assert!(!pair.callee.may_send_video());
        pair.advance(Duration::from_secs(10) - SILENT_LINK);
        assert!(pair.caller.is_open() && pair.callee.is_open());
        let (mut caller, mut callee) = resumptions(&pair);
        assert!(resume(&mut pair, &mut caller, &mut callee));
        cut(&mut pair, false);
        assert!(events(&mut pair.caller).contains(&Event::Reconnected));
        assert!(events(&mut pair.callee).contains(&Event::Reconnected));
        // Both are asked for a keyframe, and P-frames wait for one.
        assert!(pair.caller.take_keyframe_wanted() && pair.callee.take_keyframe_wanted());
        assert!(pair.callee.may_send_video());
        pair.callee.send_frame(frame(2, false)).unwrap();
        pair.callee.send_frame(frame(3, true)).unwrap();
        pair.caller.send_frame(frame(1, true)).unwrap();
        pair.advance(Duration::from_millis(100));
        assert_eq!(frames(&mut pair.caller), [3]);
        assert_eq!(frames(&mut pair.callee), [1]);
        // The call goes on past its old deadline.
        pair.advance(Duration::from_secs(40));
        assert_eq!(pair.caller.end_reason(), None);
        assert_eq!(pair.callee.end_reason(), None);
    }

    #[test]
    fn an_outage_past_thirty_seconds_ends_the_call_on_both_sides() {
        let mut pair = Pair::answered();
        pair.advance(Duration::from_millis(500));
        cut(&mut pair, true);
        let cut_at = pair.now;
        pair.advance(RECONNECT_TIMEOUT - Duration::from_millis(600));
        assert!(pair.caller.is_reconnecting() && pair.callee.is_reconnecting());
        pair.advance(Duration::from_secs(1));
        let gone = EndReason::PeerNotResponding {
            secs: RECONNECT_TIMEOUT.as_secs(),
        };
        assert_eq!(ended(&mut pair.caller), Some(gone.clone()));
        assert_eq!(ended(&mut pair.callee), Some(gone));
        assert!(pair.now - cut_at <= Duration::from_secs(31));
        // After the end, nothing resumes it.
        assert!(pair.caller.ticket().is_none() && pair.callee.ticket().is_none());
    }

    #[test]
    fn a_frozen_peer_whose_machine_still_answers_is_let_go_within_six_seconds() {
        let mut pair = Pair::answered();
        pair.advance(Duration::from_millis(500));
        cut(&mut pair, true);
        // The kernel sees our bytes acknowledged: the program is frozen.
        pair.caller_acked = Some(true);
        let frozen_at = pair.now;
        pair.advance(Duration::from_secs(2));
        // Its buffer full, its kernel answers only backed-off window
        // probes: a later reading may look stalled, and changes nothing.
        pair.caller_acked = Some(false);
        pair.advance(Duration::from_secs(4));
        let seen = events(&mut pair.caller);
        assert!(!reconnecting(&seen));
        assert!(seen.contains(&Event::Ended(EndReason::PeerNotResponding { secs: 5 })));
        assert!(pair.now - frozen_at <= IDLE_TIMEOUT + Duration::from_secs(1));
    }

    #[test]
    fn a_used_ticket_and_a_replayed_resumption_are_refused() {
        let mut pair = silent_for_two_seconds();
        let old = pair.caller.ticket().unwrap();
        // A resumption someone captured: the caller's Hello and message 1
        // of an attempt that was lost, and its proof.
        let (mut lost, mut lost_callee) = resumptions(&pair);
        let captured_first = lost.take_outgoing();
        lost_callee.handle_bytes(&captured_first).unwrap();
        lost.handle_bytes(&lost_callee.take_outgoing()).unwrap();
        let captured_proof = lost.take_outgoing();
        // Replayed while that ticket still works: message 2 comes back, but
        // the old proof does not open with the new keys.
        let mut replayed = Resumption::callee(pair.callee.tickets(), pair.now);
        assert!(replayed.handle_bytes(&captured_first).unwrap().is_none());
        assert!(matches!(
            replayed.handle_bytes(&captured_proof),
            Err(ProtocolError::Secure(_))
        ));
        assert!(pair.callee.is_open(), "a refused resumption ended the call");
        // The real caller resumes and speaks on the new connection; then
        // its ticket is spent.
        let (mut caller, mut callee) = resumptions(&pair);
        assert!(resume(&mut pair, &mut caller, &mut callee));
        cut(&mut pair, false);
        pair.advance(Duration::from_millis(100));
        assert_ne!(pair.caller.ticket().unwrap().id, old.id);
        let mut stale = Resumption::caller(&old, pair.now).unwrap();
        let mut callee = Resumption::callee(pair.callee.tickets(), pair.now);
        assert_eq!(
            callee.handle_bytes(&stale.take_outgoing()).err(),
            Some(ProtocolError::NothingToResume)
        );
        let mut replayed = Resumption::callee(pair.callee.tickets(), pair.now);
        assert_eq!(
            replayed.handle_bytes(&captured_first).err(),
            Some(ProtocolError::NothingToResume)
        );
    }

    #[test]
    fn a_quiet_call_that_loses_its_link_reconnects_and_is_not_taken_for_frozen() {
        // Both videos paused: only Pings flow, one a second each way, so
        // the cut may fall anywhere between two of the peer's.
        for offset_ms in (0..1000).step_by(100) {
            let mut pair = Pair::answered();
            pair.caller.set_paused(true);
            pair.callee.set_paused(true);
            pair.caller_acked = Some(true);
            pair.callee_acked = Some(true);
            pair.advance(Duration::from_secs(3) + Duration::from_millis(offset_ms));
            cut(&mut pair, true);
            pair.caller_acked = Some(false);
            pair.callee_acked = Some(false);
            let cut_at = pair.now;
            while !(pair.caller.is_reconnecting() && pair.callee.is_reconnecting()) {
                assert!(
                    pair.now - cut_at <= SILENT_LINK + Duration::from_millis(100),
                    "no reconnecting {:?} after a cut {offset_ms} ms into the second",
                    pair.now - cut_at
                );
                pair.advance(Duration::from_millis(10));
            }
            pair.advance(IDLE_TIMEOUT);
            assert!(pair.caller.is_open() && pair.callee.is_open());
        }
    }

    #[test]
    fn a_callee_that_moved_first_takes_its_last_ticket_until_the_caller_speaks() {
        let mut pair = silent_for_two_seconds();
        let old = pair.caller.ticket().unwrap();
        // The callee takes the proof and moves; its first words never
        // reach the caller, whose attempt gives up.
        let (mut caller, mut callee) = up_to_the_proof(&pair);
        let done = callee
            .handle_bytes(&caller.take_outgoing())
            .unwrap()
            .unwrap();
        assert!(
            pair.callee
                .resume(pair.now, done.generation, done.keys, &done.leftover)
        );
        pair.callee.take_outgoing(&mut Vec::new());
        assert!(pair.callee.is_moving());
        // While that connection lives, a second resumption with the same
        // ticket (another of the caller's attempts) is not taken.
        let (mut caller, mut callee) = resumptions(&pair);
        assert_eq!(
            callee.handle_bytes(&caller.take_outgoing()).err(),
            Some(ProtocolError::NothingToResume)
        );
        // The caller gave up on it and closed it; it tries again with the
        // ticket it still holds.
        pair.callee.handle_link_failed();
        assert_eq!(pair.caller.ticket().unwrap().id, old.id);
        let (mut caller, mut callee) = resumptions(&pair);
        assert!(resume(&mut pair, &mut caller, &mut callee));
        cut(&mut pair, false);
        pair.advance(Duration::from_millis(100));
        assert!(pair.caller.is_open() && pair.callee.is_open());
        assert!(!pair.caller.is_reconnecting() && !pair.callee.is_reconnecting());
        // The caller spoke on the new connection: the old ticket is spent.
        assert_eq!(pair.callee.tickets().len(), 1);
        let mut stale = Resumption::caller(&old, pair.now).unwrap();
        let mut callee = Resumption::callee(pair.callee.tickets(), pair.now);
        assert_eq!(
            callee.handle_bytes(&stale.take_outgoing()).err(),
            Some(ProtocolError::NothingToResume)
        );
    }

    #[test]
    fn words_that_do_not_open_in_the_callee_s_place_move_nothing() {
        let pair = silent_for_two_seconds();
        let (mut caller, _callee) = up_to_the_proof(&pair);
        let mut injected = Vec::new();
        wire::frame(&[0x5a; 64], &mut injected);
        assert!(matches!(
            caller.handle_bytes(&injected),
            Err(ProtocolError::Secure(_))
        ));
        assert!(pair.caller.is_open() && pair.caller.is_reconnecting());
    }

    #[test]
    fn a_stranger_cannot_resume_even_with_the_captured_id() {
        let pair = silent_for_two_seconds();
        let real = Resumption::caller(&pair.caller.ticket().unwrap(), pair.now)
            .unwrap()
            .take_outgoing();
        let hello_len = 8 + u64::from_le_bytes(real[..8].try_into().unwrap()) as usize;
        // Even holding the ticket itself (its id and its key), someone
        // without the caller's static key does not get in.
        let forged = pair.caller.ticket().unwrap().held_by(&key());
        let mut stranger = Resumption::caller(&forged, pair.now)
            .unwrap()
            .take_outgoing();
        let stranger_hello = 8 + u64::from_le_bytes(stranger[..8].try_into().unwrap()) as usize;
        let mut bytes = real[..hello_len].to_vec();
        bytes.extend(stranger.drain(stranger_hello..));
        let mut callee = Resumption::callee(pair.callee.tickets(), pair.now);
        assert!(matches!(
            callee.handle_bytes(&bytes),
            Err(ProtocolError::Secure(_))
        ));
        assert!(
            callee.take_outgoing().is_empty(),
            "a stranger got an answer"
        );
        // And a connection that is no resumption at all is not one either.
        let mut callee = Resumption::callee(pair.callee.tickets(), pair.now);
        let mut hello = Vec::new();
        wire::encode_payload(&Hello::new([1; 32]), MAX_HELLO_LEN, &mut hello).unwrap();
        let mut framed = Vec::new();
        wire::frame(&hello, &mut framed);
        assert_eq!(
            callee.handle_bytes(&framed).err(),
            Some(ProtocolError::NothingToResume)
        );
        assert!(pair.callee.is_open());
    }
}

//! A connection's outbound queue: the bytes waiting to be written to one client, in order.
//!
//! Two sides use it. The fan-out (`routing`, on a publisher's reader task) and the
//! connection's own reader (protocol replies) append under the queue's lock; the connection's
//! writer task takes everything queued at once and writes it. The queue counts what it holds
//! and what the writer has taken but not yet written, so that the connection can be bounded
//! in bytes (`max_pending`); what to do when the bound is hit is the caller's decision.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// What is waiting to be written to one connection.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    /// Frozen buffers, in order, before `tail`.
    chunks: VecDeque<Bytes>,
    /// Small writes coalesce here.
    tail: BytesMut,
    /// Bytes in `chunks` + `tail`.
    queued: usize,
    /// Bytes taken by the writer and not yet written.
    in_flight: usize,
    /// Nothing more is accepted (slow consumer, or the connection is going).
    closed: bool,
    /// Write what is queued, then close.
    closing: bool,
}

impl OutQueue {
    /// Whether nothing is queued (bytes taken by the writer do not count).
    pub(crate) fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Whether the queue accepts nothing more.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the writer is to close the connection once the queue is empty.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing
    }

    /// Bytes counted against `max_pending`.
    pub(crate) fn pending(&self) -> usize {
        self.queued + self.in_flight
    }

    /// The buffer small writes are appended to; record what was appended with
    /// [`OutQueue::add_queued`].
    pub(crate) fn tail_mut(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Queues `bytes` by reference, after what is in the tail.
    pub(crate) fn push_shared(&mut self, bytes: Bytes) {
        if !self.tail.is_empty() {
            self.chunks.push_back(self.tail.split().freeze());
        }
        self.chunks.push_back(bytes);
    }

    /// Records `n` bytes just appended (to the tail or by [`OutQueue::push_shared`]).
    pub(crate) fn add_queued(&mut self, n: usize) {
        self.queued += n;
    }

    /// Copies `bytes` to the tail and counts them.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        self.queued += bytes.len();
    }

    /// Closes the queue and drops everything queued (a slow consumer). Returns false if it was
    /// already closed, and then changes nothing.
    pub(crate) fn discard(&mut self) -> bool {
        if self.closed {
            return false;
        }
        self.closed = true;
        self.chunks.clear();
        self.tail.clear();
        self.queued = 0;
        true
    }

    /// Closes the queue to new bytes; the writer writes what is queued, then closes.
    pub(crate) fn close_after_flush(&mut self) {
        self.closing = true;
        self.closed = true;
    }

    /// Moves everything queued, in order, to the empty `batch` for the writer, and returns
    /// how many bytes that is; they stay counted until [`OutQueue::written`].
    pub(crate) fn take_into(&mut self, batch: &mut VecDeque<Bytes>) -> usize {
        std::mem::swap(&mut self.chunks, batch);
        if !self.tail.is_empty() {
            batch.push_back(self.tail.split().freeze());
        }
        let n = self.queued;
        self.in_flight += n;
        self.queued = 0;
        n
    }

    /// Records that the writer wrote the `n` bytes it took.
    pub(crate) fn written(&mut self, n: usize) {
        self.in_flight -= n;
    }
}

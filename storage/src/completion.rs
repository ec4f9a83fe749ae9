//! The future every log operation returns (v1 [`crate::Wal`] and v2
//! [`crate::log::GroupLog`] alike): resolved by the log's syncer thread once
//! the operation is durable.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::oneshot;
use futures::FutureExt;

use crate::error::StorageError;

/// Future of one syncer operation; resolves once the operation is durable.
/// `Send`, runtime-agnostic, and dropping it does not cancel the write.
pub struct Completion<T> {
    rx: CompletionInner<T>,
}

enum CompletionInner<T> {
    Pending(oneshot::Receiver<Result<T, StorageError>>),
    Ready(Option<Result<T, StorageError>>),
}

/// The sending half the syncer completes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

impl<T> Completion<T> {
    pub(crate) fn from_receiver(rx: oneshot::Receiver<Result<T, StorageError>>) -> Self {
        Completion { rx: CompletionInner::Pending(rx) }
    }

    /// A completion that is already resolved (an operation that changed nothing).
    pub(crate) fn ready(value: Result<T, StorageError>) -> Self {
        Completion { rx: CompletionInner::Ready(Some(value)) }
    }

    /// A reply channel and the completion it resolves.
    pub(crate) fn channel() -> (Reply<T>, Completion<T>) {
        let (tx, rx) = oneshot::channel();
        (tx, Completion::from_receiver(rx))
    }
}

// Never pin-projected: the value is moved out through `Option::take`.
impl<T> Unpin for Completion<T> {}

impl<T> Future for Completion<T> {
    type Output = Result<T, StorageError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.rx {
            CompletionInner::Pending(rx) => rx.poll_unpin(cx).map(|r| r.unwrap_or(Err(StorageError::Closed))),
            CompletionInner::Ready(v) => Poll::Ready(v.take().unwrap_or(Err(StorageError::Closed))),
        }
    }
}

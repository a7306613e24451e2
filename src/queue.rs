//! A bounded hand-off queue between two threads, with a fixed capacity
//! (`heapless::Deque`, no allocation) and an explicit policy when full:
//! [`BoundedQueue::push_drop_oldest`] evicts the oldest waiting item and hands
//! it back to the caller (to recycle and count), [`BoundedQueue::push_wait`]
//! blocks. `close` ends the stream: `pop` drains what is left, then returns `None`.

use std::sync::{Condvar, Mutex, MutexGuard};

use heapless::Deque;

/// Fixed capacity of every queue; the usable depth is set at construction.
pub const QUEUE_CAPACITY: usize = 16;

struct Inner<T> {
    items: Deque<T, QUEUE_CAPACITY>,
    closed: bool,
}

pub struct BoundedQueue<T> {
    inner: Mutex<Inner<T>>,
    changed: Condvar,
    depth: usize,
}

impl<T> BoundedQueue<T> {
    /// A queue holding at most `depth` items (clamped to 1..=QUEUE_CAPACITY).
    pub fn new(depth: usize) -> Self {
        Self {
            inner: Mutex::new(Inner { items: Deque::new(), closed: false }),
            changed: Condvar::new(),
            depth: depth.clamp(1, QUEUE_CAPACITY),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `item`; if the queue is full the oldest waiting item is removed and returned.
    pub fn push_drop_oldest(&self, item: T) -> Option<T> {
        let mut g = self.lock();
        let dropped = if g.items.len() >= self.depth { g.items.pop_front() } else { None };
        // Cannot fail: there is room now.
        let _ = g.items.push_back(item);
        drop(g);
        self.changed.notify_all();
        dropped
    }

    /// Adds `item`, waiting for room.
    pub fn push_wait(&self, item: T) {
        let mut g = self.lock();
        while g.items.len() >= self.depth {
            g = self.changed.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        let _ = g.items.push_back(item);
        drop(g);
        self.changed.notify_all();
    }

    /// The oldest item, waiting for one; `None` once closed and empty.
    pub fn pop(&self) -> Option<T> {
        let mut g = self.lock();
        loop {
            if let Some(item) = g.items.pop_front() {
                drop(g);
                self.changed.notify_all();
                return Some(item);
            }
            if g.closed {
                return None;
            }
            g = self.changed.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Like [`Self::pop`] but gives up after `timeout`: `Err(())` on timeout,
    /// `Ok(None)` once closed and empty.
    pub fn pop_timeout(&self, timeout: std::time::Duration) -> Result<Option<T>, ()> {
        let deadline = std::time::Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if let Some(item) = g.items.pop_front() {
                drop(g);
                self.changed.notify_all();
                return Ok(Some(item));
            }
            if g.closed {
                return Ok(None);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(());
            }
            g = self.changed.wait_timeout(g, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_oldest_when_full() {
        let q = BoundedQueue::new(2);
        assert_eq!(q.push_drop_oldest(1), None);
        assert_eq!(q.push_drop_oldest(2), None);
        assert_eq!(q.push_drop_oldest(3), Some(1));
        assert_eq!(q.len(), 2);
        q.close();
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn pop_timeout_times_out_then_drains_then_ends() {
        let q = BoundedQueue::new(2);
        assert_eq!(q.pop_timeout(std::time::Duration::from_millis(5)), Err(()));
        q.push_wait(7);
        q.close();
        assert_eq!(q.pop_timeout(std::time::Duration::from_millis(5)), Ok(Some(7)));
        assert_eq!(q.pop_timeout(std::time::Duration::from_millis(5)), Ok(None));
    }

    #[test]
    fn depth_is_clamped_to_the_fixed_capacity() {
        let q = BoundedQueue::new(1000);
        for i in 0..100 {
            q.push_drop_oldest(i);
        }
        assert_eq!(q.len(), QUEUE_CAPACITY);
    }

    #[test]
    fn push_wait_blocks_until_there_is_room() {
        let q = std::sync::Arc::new(BoundedQueue::new(1));
        q.push_wait(1);
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.push_wait(2));
        assert_eq!(q.pop(), Some(1));
        t.join().unwrap();
        assert_eq!(q.pop(), Some(2));
    }
}

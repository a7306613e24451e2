//! A fixed pool of reusable items, allocated once at start. `take` waits for
//! a free item; `give` returns one. The pool never holds more than it was
//! made with, so its memory is what it was at start.

use std::sync::{Condvar, Mutex, MutexGuard};

pub struct Pool<T> {
    free: Mutex<Vec<T>>,
    available: Condvar,
    count: usize,
}

impl<T> Pool<T> {
    /// `count` items made by `make`.
    pub fn from_fn(count: usize, mut make: impl FnMut() -> T) -> Self {
        let mut free = Vec::with_capacity(count);
        for _ in 0..count {
            free.push(make());
        }
        Self { free: Mutex::new(free), available: Condvar::new(), count }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many items the pool was made with.
    pub fn count(&self) -> usize {
        self.count
    }

    /// A free item, waiting for one to come back if all are in use.
    pub fn take(&self) -> T {
        let mut free = self.lock();
        loop {
            if let Some(f) = free.pop() {
                return f;
            }
            free = self.available.wait(free).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A free item if one is available now.
    pub fn try_take(&self) -> Option<T> {
        self.lock().pop()
    }

    /// Gives an item back; beyond the pool's count it is dropped.
    pub fn give(&self, item: T) {
        let mut free = self.lock();
        if free.len() < self.count {
            free.push(item);
        }
        drop(free);
        self.available.notify_one();
    }

    /// How many items are free right now.
    pub fn free_count(&self) -> usize {
        self.lock().len()
    }
}

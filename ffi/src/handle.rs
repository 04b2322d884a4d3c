//! Opaque handles: tokens looked up in a registry, never dereferenced.
//!
//! A C caller can pass a freed handle, a handle of the wrong type or
//! garbage. Reading a "magic" field through such a pointer is itself
//! undefined behaviour (and valgrind reports it), so a handle here is a
//! number that looks like a pointer: each `_new` takes a fresh id (ids are
//! never reused), and every entry point looks it up in the registry of its
//! type. A stale or foreign handle is simply not found.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// Ids are shared by all handle types, so a config handle is never a valid
/// producer handle either.
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// Live handles of one type.
#[derive(Debug)]
pub struct Registry<T> {
    live: RwLock<Option<HashMap<usize, Arc<T>>>>,
}

impl<T> Registry<T> {
    /// An empty registry, usable in a `static`.
    pub const fn new() -> Self {
        Registry {
            live: RwLock::new(None),
        }
    }

    /// Registers `value`; returns its handle (never NULL).
    pub fn insert<H>(&self, value: T) -> *mut H {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        live.get_or_insert_with(HashMap::new)
            .insert(id, Arc::new(value));
        // Shifted so the token is aligned like a real pointer and not NULL.
        (id << 4) as *mut H
    }

    /// The value behind a live handle. The `Arc` keeps it alive for the
    /// rest of the call even if another thread frees the handle meanwhile.
    pub fn get<H>(&self, handle: *const H) -> Option<Arc<T>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.as_ref()?.get(&Self::id(handle)?).cloned()
    }

    /// Unregisters a handle; later lookups fail.
    pub fn remove<H>(&self, handle: *const H) -> Option<Arc<T>> {
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        live.as_mut()?.remove(&Self::id(handle)?)
    }

    fn id<H>(handle: *const H) -> Option<usize> {
        let raw = handle as usize;
        (raw != 0 && raw & 0xf == 0).then_some(raw >> 4)
    }
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}
